#!/usr/bin/env python3
"""Write the synthetic demo shop (items.jsonl, events.jsonl, truth.json) in the driftrec format.

    /usr/bin/python3 models/train/demo_data.py --out models/train/out/demo
    /usr/bin/python3 models/train/demo_data.py --out models/train/out/tiny --preset tiny --seed 1
    /usr/bin/python3 models/train/demo_data.py --out out/big --users 5000 --items 4000

Exit status 0 on success, 2 on bad arguments. The generator is driftrec_train/demo_shop.py;
docs/data.md ("The demo shop") describes it and the ground truth.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driftrec_train.demo_shop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
