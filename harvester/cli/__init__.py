"""The command line: :mod:`.main` (parser, exit codes), :mod:`.harvest` and :mod:`.ledger`
(the commands), :mod:`.output` (rich tables, JSON, progress), :mod:`.common`."""
