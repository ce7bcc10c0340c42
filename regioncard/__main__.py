from regioncard.cli import main

raise SystemExit(main())
