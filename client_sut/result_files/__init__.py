"""The files `sla` and `sweep` write, as types: written by their commands, read by the report,
by `sla --from-sweep` and by the commands' own last lines. Below every command, so a reader never
imports the command that writes what it reads."""
