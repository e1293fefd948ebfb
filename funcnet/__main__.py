from funcnet._cli import main

raise SystemExit(main())
