"""Writing results safely: atomic files and staged result folders."""
