"""What `cdk deploy` would deploy, read from the synthesized template: the rehearsal runs this, not a copy.

`synthesize(config)` runs the CDK app (`app.py`) on a configuration exactly as the CDK CLI does (the
context of cdk.json, with `immutableAmi` pointing at the configuration), once per content: the cloud
assembly is cached under `.cache/rehearsal/<hash>/`, keyed by the configuration, cdk.json and every
source file the template depends on. `load(path)` reads a template (`*.template.json`) or a cloud
assembly folder (`cdk.out`) without synthesizing.

From the template it takes the state machine (its definition, from the definition asset, and its
`DefinitionSubstitutions`), every Lambda function (`Handler`, `Environment`, `Timeout`, `MemorySize`,
`Role`) and every role's identity policies; the deploy configuration the functions receive is their
`DEPLOY_CONFIG` variable, so a template alone is enough to rehearse.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_ROOT / ".cache" / "rehearsal"
CONTEXT_KEY = "immutableAmi"
# Everything the synthesized template is made from (the Lambda code asset included: its hash is in the template).
SYNTH_PACKAGES = ("aws-cdk-lib", "constructs", "cdk-nag", "pydantic")
SOURCES = (
    "app.py",
    "cdk.json",
    "stacks",
    "lambdas",
    "statemachine/deploy.asl.json",
    "imagebuilder",
    "requirements.txt",
    "requirements-dev.txt",  # its aws-lambda-powertools pin is the functions' layer version
)


class ArtifactError(RuntimeError):
    """The template cannot be rehearsed as it is: what is wrong, and where."""


@dataclass(frozen=True)
class Function:
    logical_id: str
    handler: str  # "lock.handler.lambda_handler"
    environment: dict[str, Any]  # as the template holds it (values may be intrinsics)
    timeout_seconds: int
    memory_mb: int
    role: str  # logical id of its role

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def step(self) -> str:
        """The folder under lambdas/ the handler lives in."""
        return self.handler.split(".", 1)[0]


@dataclass(frozen=True)
class Artifact:
    template_path: Path
    stack_name: str
    template: dict[str, Any]
    definition: str  # the ASL as deployed, `${...}` placeholders still in it
    state_machine: str  # logical id
    functions: dict[str, Function]  # by logical id
    deploy_config: dict[str, Any]  # what every function receives as DEPLOY_CONFIG

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_name}

    def substitutions(self) -> dict[str, Any]:
        return dict(self.resources[self.state_machine]["Properties"].get("DefinitionSubstitutions", {}))

    def role_policies(self, role: str) -> dict[str, dict[str, Any]]:
        """Every identity policy of a role, with its document from the template: inline `Policies`, and the
        AWS::IAM::Policy, AWS::IAM::RolePolicy and AWS::IAM::ManagedPolicy resources attached to it (CDK moves
        statements that overflow a role's inline policy into such a managed policy). What the rehearsal cannot
        read, a managed policy from outside the stack or a permissions boundary, is refused, never skipped: a
        Deny in it would be missed."""
        properties = self.resources[role]["Properties"]
        if properties.get("PermissionsBoundary"):
            raise ArtifactError(f"role {role} has a permissions boundary, which the rehearsal does not evaluate")
        policies = {p["PolicyName"]: p["PolicyDocument"] for p in properties.get("Policies", [])}
        for arn in properties.get("ManagedPolicyArns", []):
            ref = arn.get("Ref") if isinstance(arn, dict) else None
            if self.resources.get(str(ref), {}).get("Type") != "AWS::IAM::ManagedPolicy":
                raise ArtifactError(f"role {role}: the managed policy {arn!r} has no document in the template")
            policies[str(ref)] = self.resources[str(ref)]["Properties"]["PolicyDocument"]
        for logical_id, resource in self.resources.items():
            attached = resource.get("Properties", {})
            if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
                if {"Ref": role} in attached.get("Roles", []):
                    policies[logical_id] = attached["PolicyDocument"]
            elif resource["Type"] == "AWS::IAM::RolePolicy" and attached.get("RoleName") == {"Ref": role}:
                policies[logical_id] = attached["PolicyDocument"]
        return policies


def _referenced_files(value: Any) -> list[Path]:
    """Files of this repository the configuration names (a component YAML, say): the template embeds them."""
    if isinstance(value, dict):
        return [f for v in value.values() for f in _referenced_files(v)]
    if isinstance(value, list):
        return [f for v in value for f in _referenced_files(v)]
    if isinstance(value, str) and len(value) < 256 and "\n" not in value:
        path = PROJECT_ROOT / value
        return [path] if path.is_file() else []
    return []


def _hash_sources(config_text: str, context: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(config_text.encode())
    from stacks.config import strip_json_comments

    with contextlib.suppress(ValueError):
        for file in sorted(set(_referenced_files(json.loads(strip_json_comments(config_text))))):
            digest.update(file.read_bytes())
    digest.update(json.dumps(context, sort_keys=True).encode())
    digest.update(sys.version.encode())
    for package in SYNTH_PACKAGES:  # what synthesizes, as installed (requirements.txt pins it, but a venv may lag)
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    for name in SOURCES:
        path = PROJECT_ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(str(file.relative_to(PROJECT_ROOT)).encode())
            digest.update(file.read_bytes())
    from stacks.image_versions import ledger_file

    # The Image Builder versions come from the ledger the app reads, which may lie outside the repository.
    ledger = ledger_file()
    digest.update(b"versions.json\0" + (ledger.read_bytes() if ledger.is_file() else b"(none)"))
    return digest.hexdigest()[:20]


def cdk_context() -> dict[str, Any]:
    return dict(json.loads((PROJECT_ROOT / "cdk.json").read_text()).get("context", {}))


def configured_file() -> Path:
    """The configuration cdk.json names."""
    value = cdk_context().get(CONTEXT_KEY)
    if not isinstance(value, str):
        raise ArtifactError(f"cdk.json context {CONTEXT_KEY!r} must name a configuration file (got {value!r})")
    return PROJECT_ROOT / value


def synthesize(config: Path | dict[str, Any] | None = None) -> Artifact:
    """Synthesize the app on `config` (a file, a configuration object, or cdk.json's), once per content."""
    if config is None:
        config = configured_file()
    if isinstance(config, Path):
        if not config.is_file():
            raise ArtifactError(f"no configuration file {config}")
        config_text = config.read_text()
        context_value: Any = str(config.resolve())
    else:
        config_text = json.dumps(config, sort_keys=True)
        context_value = config
    context = {**cdk_context(), CONTEXT_KEY: context_value}
    key = _hash_sources(config_text, {k: v for k, v in context.items() if k != CONTEXT_KEY})
    outdir = CACHE_DIR / key
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{key}.lock", "w") as lock:  # parallel test workers synthesize each content once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (outdir / "manifest.json").is_file():
            _run_app(context, outdir)
    return load(outdir)


def _run_app(context: dict[str, Any], outdir: Path) -> None:
    """What `cdk synth` does: run the app with the context in CDK_CONTEXT_JSON and the output folder in CDK_OUTDIR."""
    staging = Path(tempfile.mkdtemp(prefix="synth-", dir=CACHE_DIR))
    env = {**os.environ, "CDK_OUTDIR": str(staging), "CDK_CONTEXT_JSON": json.dumps(context)}
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    done = subprocess.run(  # noqa: S603 - our own app, with this interpreter
        [sys.executable, str(PROJECT_ROOT / "app.py")], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(f"synthesizing the app failed:\n{done.stderr.strip() or done.stdout.strip()}")
    if outdir.exists():
        shutil.rmtree(outdir)
    staging.rename(outdir)


def load(path: Path) -> Artifact:
    """A `*.template.json`, or a cloud assembly folder holding exactly one pipeline stack."""
    path = Path(path)
    if path.is_dir():
        templates = sorted(path.glob("*.template.json"))
        if len(templates) != 1:
            names = ", ".join(t.name for t in templates) or "none"
            raise ArtifactError(f"{path}: expected one *.template.json, found {names}")
        path = templates[0]
    if not path.is_file():
        raise ArtifactError(f"no template {path}")
    template = json.loads(path.read_text())
    machines = [k for k, v in template.get("Resources", {}).items() if v["Type"] == "AWS::StepFunctions::StateMachine"]
    if len(machines) != 1:
        raise ArtifactError(f"{path}: expected one state machine, found {len(machines)}")
    functions = functions_of(template)
    configs = {
        json.dumps(json.loads(f.environment["DEPLOY_CONFIG"]), sort_keys=True)
        for f in functions.values()
        if isinstance(f.environment.get("DEPLOY_CONFIG"), str)
    }
    if len(configs) != 1:
        raise ArtifactError(f"{path}: the functions' DEPLOY_CONFIG variables are missing or differ ({len(configs)})")
    return Artifact(
        template_path=path,
        stack_name=path.name.removesuffix(".template.json"),
        template=template,
        definition=_definition(path.parent, template["Resources"][machines[0]]["Properties"]),
        state_machine=machines[0],
        functions=functions,
        deploy_config=json.loads(configs.pop()),
    )


def functions_of(template: dict[str, Any]) -> dict[str, Function]:
    """Every AWS::Lambda::Function of a template, by logical id."""
    return {
        logical_id: _function(logical_id, resource["Properties"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def _function(logical_id: str, properties: dict[str, Any]) -> Function:
    role = properties.get("Role", {})
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        raise ArtifactError(f"function {logical_id}: its Role is not a role of this stack ({role!r})")
    return Function(
        logical_id=logical_id,
        handler=properties["Handler"],
        environment=dict(properties.get("Environment", {}).get("Variables", {})),
        # Lambda's defaults when the template leaves them out (AWS::Lambda::Function: Timeout 3, MemorySize 128).
        timeout_seconds=int(properties.get("Timeout", 3)),
        memory_mb=int(properties.get("MemorySize", 128)),
        role=role["Fn::GetAtt"][0],
    )


def _definition(folder: Path, properties: dict[str, Any]) -> str:
    """DefinitionString as is, or the asset DefinitionS3Location names (`asset.<key>` beside the template)."""
    if isinstance(properties.get("DefinitionString"), str):
        return str(properties["DefinitionString"])
    location = properties.get("DefinitionS3Location")
    if not location:
        raise ArtifactError("the state machine has neither a literal DefinitionString nor a DefinitionS3Location")
    asset = folder / f"asset.{location['Key']}"
    if not asset.is_file():
        raise ArtifactError(f"the state machine's definition asset {asset.name} is not beside the template")
    return asset.read_text()


def pipelines_of(artifact: Artifact, resolver: Any) -> dict[str, tuple[str, str]]:
    """Each image pipeline of the template: its ARN → (its `immutable-ami:pipeline` tag, "<recipe>/<version>")."""
    out = {}
    for logical_id, pipeline in artifact.of_type("AWS::ImageBuilder::ImagePipeline").items():
        properties = pipeline["Properties"]
        recipe = artifact.resources[properties["ImageRecipeArn"]["Fn::GetAtt"][0]]["Properties"]
        kind = properties.get("Tags", {}).get("immutable-ami:pipeline")
        if kind not in {"base", "app"}:
            raise ArtifactError(f"image pipeline {logical_id} has no immutable-ami:pipeline tag of base or app")
        out[resolver.get_att(logical_id, "Arn")] = (str(kind), f"{recipe['Name']}/{recipe['Version']}")
    return out


def image_builder_of(artifact: Artifact, resolver: Any) -> dict[str, Any]:
    """What a runtime recipe and image may use: the template's components, infrastructure and distributions."""
    return {
        "components": {resolver.get_att(i, "Arn") for i in artifact.of_type("AWS::ImageBuilder::Component")},
        "infrastructures": {
            resolver.get_att(i, "Arn") for i in artifact.of_type("AWS::ImageBuilder::InfrastructureConfiguration")
        },
        "distributions": {
            resolver.get_att(i, "Arn") for i in artifact.of_type("AWS::ImageBuilder::DistributionConfiguration")
        },
        # Each pipeline's recipe parent, resolved (GetImage reports it for the pipeline's builds).
        "parents": {
            resolver.get_att(logical_id, "Arn"): str(
                resolver.resolve(
                    artifact.resources[pipeline["Properties"]["ImageRecipeArn"]["Fn::GetAtt"][0]]["Properties"][
                        "ParentImage"
                    ],
                    f"{logical_id}.ParentImage",
                )
            )
            for logical_id, pipeline in artifact.of_type("AWS::ImageBuilder::ImagePipeline").items()
        },
    }
