"""The readable timeline of a rehearsal and its final state."""

from __future__ import annotations

from rehearsal.invariants import HEADER
from rehearsal.result import Result


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def print_report(result: Result) -> None:
    print(f"Rehearsal: {result.scenario}")
    if result.note:
        print(f"  ({result.note})")
    for target in result.targets:
        print(
            f"  stage {target['stage']} ({target['strategy']}), wave {target['wave']}: "
            f"{target['autoScalingGroupName']} with {target['launchTemplateId']}"
        )
    print(f"{'sim time':>9}  state")
    for at, state, kind, notes in result.timeline:
        if kind == HEADER:
            print(f"{_clock(at):>9}  ── {state}")
            continue
        if kind in {"Pass", "Choice"} and not notes:
            continue  # bookkeeping: counters and branches (the JSON has every transition)
        print(f"{_clock(at):>9}  {state}")
        for note in notes:
            print(f"{'':>11}  - {note}")
    print()
    outcome = result.status + (f" ({result.error}: {result.cause})" if result.error else "")
    print(f"Outcome: {outcome}")
    for other in result.also_started:
        ended = other["status"] + (f" ({other['error']}: {other['cause']})" if other["error"] else "")
        print(f"  also started at {_clock(other['startedAtSeconds'])} (the first in {other['when']}): ", end="")
        print(f"{other['execution']}: {ended}")
    for template_id, lt in result.launch_templates.items():
        runs = f" (commit {lt['commit']})" if lt.get("commit") else ""
        print(f"  {lt['group']}: {template_id} default version {lt['defaultVersion']} → {lt['amiId']}{runs}")
    for bake in result.bakes:
        made = "cancelled" if bake["cancelled"] else (bake["amiId"] or "no AMI")
        what = (
            f"app image of commit {bake['commit']} on {bake['parentImage']}"
            if bake["commit"]
            else f"{bake['pipeline']} image"
        )
        print(f"  build {bake['build']}: {what} → {made}")
    print(f"  AMIs kept: {len(result.images_kept)}; pruned: {', '.join(result.images_pruned) or 'none'}")
    print(f"  snapshots deleted: {len(result.snapshots_deleted)}; lock: {result.lock}")
    print(f"  notifications: {', '.join(n['event'] for n in result.notifications) or 'none'}")
    print(
        f"  {result.transitions} state transitions, {result.history_events} history events, "
        f"{result.lambda_invocations} Lambda invocations, {sum(result.api_calls.values())} AWS API calls"
    )
    print(f"  simulated {_clock(result.simulated_seconds)} in {result.wall_seconds:.1f}s wall")
    print(f"  IAM: {len(result.access_denied)} call(s) denied")
    for denied in result.access_denied:
        print(f"    {denied['step']}: {denied['action']} on {denied['resource']}")
    for violation in result.invariant_violations:
        print(f"  INVARIANT VIOLATED: {violation}")
    if result.invariant_violations:
        print(f"  invariants: {len(result.invariant_violations)} violated (above)")
    else:
        print("  invariants: all held (fleet, AMIs and snapshots, lock, notifications, task tokens, IAM)")


def next_step(result: Result, unexpected: bool) -> str:
    """The closing line: what to do now."""
    if unexpected or result.invariant_violations:
        return (
            f"Next: read statemachine/scenarios/{result.scenario}.json (what it plays and expects) and the lines "
            "above; `python -m rehearsal --scenario NAME --json` gives every field."
        )
    return (
        "Next: `make rehearse SCENARIO=<name>` for another case (`python -m rehearsal --list`), `make check` for "
        "the tests, `make deploy` to deploy this configuration for real."
    )
