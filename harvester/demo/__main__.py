"""``python -m harvester.demo``: ``harvester demo --serve`` (its options too), for a newcomer who
looks for the simulator and the receiver to run by hand."""

import sys

from harvester.cli.main import main

sys.exit(main(["demo", "--serve", *sys.argv[1:]]))
