from funcnet.cli import main

raise SystemExit(main())
