import sys

from oransim.cli import main

sys.exit(main())
