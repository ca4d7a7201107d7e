"""python -m rehearsal [--config FILE | --template PATH] [--list] [--scenario NAME] [--json]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rehearsal.artifact import ArtifactError
from rehearsal.dispatch import RehearsalError
from rehearsal.report import next_step, print_report
from rehearsal.runner import Target, run
from rehearsal.scenarios import DEFAULT_SCENARIO, ScenarioError, load_scenario, scenario_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal",
        description="Rehearse a deployment of your pipeline locally: the synthesized template, your stages and "
        "groups, every call checked against the deployed IAM roles.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=Path, help="configuration file to synthesize (default: the one cdk.json names)"
    )
    source.add_argument(
        "--template", type=Path, help="an already synthesized template (.template.json) or cloud assembly (cdk.out)"
    )
    parser.add_argument("--list", action="store_true", help="print the scenario names, one per line")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"scenario to run (default: {DEFAULT_SCENARIO})")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(scenario_names()))
        return 0
    try:
        scenario = load_scenario(args.scenario)
        result = run(scenario, Target(config=args.config, template=args.template))
    except (ArtifactError, RehearsalError, ScenarioError) as exc:
        print(f"rehearsal: {exc}", file=sys.stderr)
        return 2
    print_report(result)
    expected = (result.expect.get("status"), result.expect.get("error"))
    unexpected = expected[0] is not None and expected != (result.status, result.error)
    if unexpected:
        print(f"  NOT AS EXPECTED: the scenario expects {expected[0]}{' ' + expected[1] if expected[1] else ''}")
    elif expected[0] is not None:
        print(f"  as the scenario expects: {expected[0]}{' ' + expected[1] if expected[1] else ''}")
    print(next_step(result, unexpected))
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 1 if result.invariant_violations or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
