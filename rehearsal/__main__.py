"""python -m rehearsal [--list] [--scenario NAME] [--json]"""

from __future__ import annotations

import argparse
import json
import sys

from rehearsal.report import print_report
from rehearsal.runner import DEFAULT_SCENARIO, load_scenario, run, scenario_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description="Rehearse a full deployment locally.")
    parser.add_argument("--list", action="store_true", help="print the scenario names, one per line")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"scenario to run (default: {DEFAULT_SCENARIO})")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(scenario_names()))
        return 0
    result = run(load_scenario(args.scenario))
    print_report(result)
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 0 if not result.invariant_violations else 1


if __name__ == "__main__":
    sys.exit(main())
