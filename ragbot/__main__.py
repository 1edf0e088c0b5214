import sys

from ragbot.cli import main

sys.exit(main())
