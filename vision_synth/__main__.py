from vision_synth.cli import main

raise SystemExit(main())
