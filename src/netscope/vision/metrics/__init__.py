"""How faithful a map is: deletion/insertion, ROAD, confidence change, and the cascading
randomization sanity check. Metrics take maps or an explanation function, never a name."""
