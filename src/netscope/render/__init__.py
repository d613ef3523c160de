"""Pictures and pages: the only part of netscope that draws."""
