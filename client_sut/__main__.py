import sys

from client_sut.cli import main

sys.exit(main())
