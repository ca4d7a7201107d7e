"""The readable timeline of a rehearsal and its final state."""

from __future__ import annotations

from rehearsal.result import Result
from rehearsal.timeline import HARNESS, HEADER, Entry

# Entries of these kinds say nothing by themselves (a branch taken, a counter set, a pause, a Map starting: the
# headers say that): printed only when something happened under them.
QUIET_KINDS = {"Pass", "Choice", "Wait", "Map"}


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def timeline_lines(timeline: list[Entry]) -> list[str]:
    """The timeline as a person reads it: headers for stages and waves, each state with what it did, the group a
    state acts on when a wave deploys several at once, how long a wait lasted, and the harness's doings (an
    approval answered, an AWS event delivered) at their own time."""
    lines = [f"{'sim time':>9}  state"]
    for entry in timeline:
        if entry.kind == HEADER:
            lines.append(f"{_clock(entry.at):>9}  ── {entry.state}")
            continue
        if entry.kind == HARNESS:
            lines.append(f"{_clock(entry.at):>9}  · {entry.state}")
            continue
        if entry.kind in QUIET_KINDS and not entry.notes:
            continue  # bookkeeping (the JSON's counts and the history have every transition)
        lane = f"{entry.lane}: " if entry.lane else ""
        until = f" (until {_clock(entry.until)})" if entry.until is not None and entry.until - entry.at >= 1 else ""
        lines.append(f"{_clock(entry.at):>9}  {lane}{entry.state}{until}")
        lines.extend(f"{'':>11}  - {note}" for note in entry.notes)
    return lines


def print_timeline(timeline: list[Entry]) -> None:
    print("\n".join(timeline_lines(timeline)))


def invariant_lines(result: Result) -> list[str]:
    """Every invariant the rehearsal checked, held (✓) or violated (✗, with how many times): a clean run says what
    it proved, not only that nothing was found."""
    broken = sum(1 for found in result.invariants.values() if found)
    verdict = "all held" if not result.invariant_violations else f"{len(result.invariant_violations)} violation(s)"
    lines = [f"  invariants: {len(result.invariants)} checked, {verdict}" + (f" of {broken}" if broken else "")]
    for name, found in result.invariants.items():
        lines.append(f"    ✗ {name} ({found})" if found else f"    ✓ {name}")
    return lines


def print_invariants(result: Result) -> None:
    print("\n".join(invariant_lines(result)))


def print_report(result: Result) -> None:
    print(f"Rehearsal: {result.scenario}")
    if result.note:
        print(f"  ({result.note})")
    for target in result.targets:
        print(
            f"  stage {target['stage']} ({target['strategy']}), wave {target['wave']}: "
            f"{target['autoScalingGroupName']} with {target['launchTemplateId']}"
        )
    print_timeline(result.timeline)
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
    print_invariants(result)


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
