from genreg.cli.main import main

raise SystemExit(main())
