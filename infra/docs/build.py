"""`make docs`: reference documentation generated from the code into docs/generated/ (a build output).

- ``asyncapi/<service>.json``: AsyncAPI 3.0 of each service's Kafka app, produced by faststream from a
  broker built like the service's own (nothing connects): its consumer groups are subscribed exactly as
  ``yiju.common.consumer.subscribe`` does, and publishers are declared for the events the service emits
  (found in its source: ``ev.<Message>(...)``) and for its dead-letter topics. Payloads are described by
  JSON Schemas of the protobuf messages; headers by the CloudEvents binary-mode schema.
- ``events.md``: every topic with its event type, protobuf message, producers and consumer groups.
- ``protos.md``: every gRPC service, RPC, message, field and enum of ``protos/``, with their comments
  (compiled with source info by grpc_tools' protoc; without it, from the generated modules, uncommented).
- ``openapi.json``: the intent service's HTTP API (FastAPI's OpenAPI 3), from an app that connects nowhere.

Run ``python infra/docs/build.py [--out DIR]``. The output folder gets a ``.gitignore`` of ``*``.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
SERVICES_DIR = ROOT / "services"
DEFAULT_OUT = ROOT / "docs" / "generated"
GENERATOR = "infra/docs/build.py"
Path_ = tuple[int, ...]
"""A location in a FileDescriptorProto, as in SourceCodeInfo (e.g. (4, 0, 2, 1): message 0, field 1)."""

# FieldDescriptorProto.Type -> JSON Schema (protobuf binary on the wire; the schema names the fields).
_SCALARS: dict[int, dict[str, Any]] = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: {"type": "integer", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: {"type": "integer", "format": "uint64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: {"type": "integer", "format": "uint64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: {"type": "integer", "format": "uint32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: {"type": "boolean"},
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: {"type": "string"},
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: {"type": "integer", "format": "int64"},
}
_TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()
}
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_ENUM = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents binary-mode headers of every event record (record key = order id).",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "Event id; consumers drop a repeated id."},
        "ce_type": {"type": "string", "description": "The event type, e.g. yiju.intent.submitted."},
        "ce_source": {"type": "string", "description": "Who published it, e.g. yiju/planning."},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "The order id."},
        "content-type": {"type": "string", "const": "application/protobuf"},
        "traceparent": {"type": "string", "description": "W3C trace context: one sentence, one trace."},
        "tracestate": {"type": "string"},
    },
}
DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The original record's headers, plus why and where it failed.",
    "properties": {
        "x-dlq-reason": {
            "type": "string",
            "enum": ["malformed", "unhandled", "rejected", "retries_exhausted"],
        },
        "x-dlq-error-class": {"type": "string"},
        "x-dlq-error-message": {"type": "string"},
        "x-dlq-traceback": {"type": "string"},
        "x-dlq-attempts": {"type": "string"},
        "x-dlq-group": {"type": "string"},
        "x-dlq-original-topic": {"type": "string"},
        "x-dlq-original-partition": {"type": "string"},
        "x-dlq-original-offset": {"type": "string"},
        "x-dlq-at": {"type": "string", "format": "date-time"},
    },
}


# --- protobuf descriptors and their comments -------------------------------------------------------------


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """protos/ compiled with comments (grpc_tools), or the generated modules' descriptors without them."""
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    try:
        from grpc_tools import protoc
    except ImportError:
        return _generated_descriptors()
    well_known = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "protos.pb"
        args = ["protoc", f"-I{PROTOS}", f"-I{well_known}", "--include_source_info"]
        if protoc.main([*args, f"--descriptor_set_out={out}", *files]) != 0:
            raise SystemExit("protoc failed on protos/")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _generated_descriptors() -> descriptor_pb2.FileDescriptorSet:
    import importlib

    fds = descriptor_pb2.FileDescriptorSet()
    for path in sorted(PROTOS.rglob("*.proto")):
        rel = path.relative_to(PROTOS).with_suffix("")
        module = importlib.import_module("yiju.gen." + ".".join(rel.parts[1:]) + "_pb2")
        module.DESCRIPTOR.CopyToProto(fds.file.add())
    return fds


def _comment(location: descriptor_pb2.SourceCodeInfo.Location) -> str:
    text = location.leading_comments or location.trailing_comments
    return " ".join(line.strip() for line in text.strip().splitlines())


@dataclass
class Protos:
    """Every message and enum by full name, and every comment by (file, path)."""

    fds: descriptor_pb2.FileDescriptorSet
    messages: dict[str, tuple[descriptor_pb2.DescriptorProto, str, Path_]] = field(default_factory=dict)
    enums: dict[str, tuple[descriptor_pb2.EnumDescriptorProto, str, Path_]] = field(default_factory=dict)
    comments: dict[tuple[str, Path_], str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Protos:
        protos = cls(descriptor_set())
        for file in protos.fds.file:
            for location in file.source_code_info.location:
                text = _comment(location)
                if text:
                    protos.comments[(file.name, tuple(location.path))] = text
            for index, message in enumerate(file.message_type):
                protos._add_message(file, message, f".{file.package}.{message.name}", (4, index))
            for index, enum in enumerate(file.enum_type):
                protos.enums[f".{file.package}.{enum.name}"] = (enum, file.name, (5, index))
        return protos

    def _add_message(
        self,
        file: descriptor_pb2.FileDescriptorProto,
        message: descriptor_pb2.DescriptorProto,
        name: str,
        path: tuple[int, ...],
    ) -> None:
        self.messages[name] = (message, file.name, path)
        for index, nested in enumerate(message.nested_type):
            self._add_message(file, nested, f"{name}.{nested.name}", (*path, 3, index))
        for index, enum in enumerate(message.enum_type):
            self.enums[f"{name}.{enum.name}"] = (enum, file.name, (*path, 4, index))

    def comment(self, file: str, path: Iterable[int]) -> str:
        return self.comments.get((file, tuple(path)), "")

    # JSON Schema --------------------------------------------------------------------------------------

    def schema(self, full_name: str, schemas: dict[str, Any]) -> dict[str, Any]:
        """``{"$ref": ...}`` to the message's schema, adding it (and what it uses) to ``schemas``."""
        key = full_name.lstrip(".")
        if key not in schemas:
            message, file, path = self.messages[full_name]
            schemas[key] = {}  # reserve the name first: messages may refer to themselves
            properties = {}
            for index, fld in enumerate(message.field):
                prop = self._field_schema(fld, schemas)
                description = self.comment(file, (*path, 2, index))
                if description:
                    prop = {**prop, "description": description}
                properties[fld.name] = prop
            schemas[key] = {
                "type": "object",
                "title": message.name,
                "x-protobuf-message": key,
                **({"description": d} if (d := self.comment(file, path)) else {}),
                "properties": properties,
            }
        return {"$ref": f"#/components/schemas/{key}"}

    def _field_schema(
        self, fld: descriptor_pb2.FieldDescriptorProto, schemas: dict[str, Any]
    ) -> dict[str, Any]:
        if fld.type == _MESSAGE:
            entry = self.messages[fld.type_name][0]
            if entry.options.map_entry:
                value = next(f for f in entry.field if f.name == "value")
                return {"type": "object", "additionalProperties": self._field_schema(value, schemas)}
            item: dict[str, Any] = self.schema(fld.type_name, schemas)
        elif fld.type == _ENUM:
            enum = self.enums[fld.type_name][0]
            item = {"type": "string", "enum": [v.name for v in enum.value]}
        else:
            item = dict(_SCALARS[fld.type])
        return {"type": "array", "items": item} if fld.label == _REPEATED else item


# --- which service publishes what ------------------------------------------------------------------------


def emitted_messages(service: str) -> set[str]:
    """Names of the event messages the service's code constructs (``ev.PlanCreated(...)``)."""
    found: set[str] = set()
    for path in sorted((SERVICES_DIR / service).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "ev":
                found.add(func.attr)
    return found


def published_topics(service: str) -> list[str]:
    """Event topics the service publishes, then its consumer groups' dead-letter topics."""
    from yiju.common.envelope import BY_TOPIC
    from yiju.common.topics import CONSUMER_GROUPS

    names = emitted_messages(service)
    events = [topic for topic, spec in BY_TOPIC.items() if spec.message.DESCRIPTOR.name in names]
    return events + [g.dead_letter_topic for g in CONSUMER_GROUPS if g.service == service]


def kafka_services() -> list[str]:
    """Services with a Kafka app: consumer groups or published events, in the platform's order."""
    from yiju.common.topics import CONSUMER_GROUPS

    order = ["intent", "planning", "payment", "fulfilment", "model_gateway"]
    consuming = {g.service for g in CONSUMER_GROUPS}
    return [s for s in order if s in consuming or published_topics(s)]


# --- AsyncAPI --------------------------------------------------------------------------------------------


def _service_broker(service: str) -> Any:
    """The service's broker with its subscribers and publishers declared; it never connects."""
    from yiju.common.broker import create_broker
    from yiju.common.consumer import subscribe
    from yiju.common.envelope import BY_TOPIC
    from yiju.common.settings import Settings
    from yiju.common.topics import CONSUMER_GROUPS

    settings = Settings()
    broker = create_broker(settings, service)
    for group in CONSUMER_GROUPS:
        if group.service == service:  # subscribe() only needs the processor's group
            subscribe(broker, SimpleNamespace(group=group), settings)  # type: ignore[arg-type]
    for topic in published_topics(service):
        spec = BY_TOPIC.get(topic)
        what = f"{spec.message.DESCRIPTOR.full_name} ({spec.type})" if spec else "dead letters"
        broker.publisher(
            topic, title=f"{service}:{topic}", description=f"{service} publishes {what}.", schema=bytes
        )
    return broker


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def asyncapi(service: str, protos: Protos) -> dict[str, Any]:
    """The service's AsyncAPI 3.0 document, payloads and headers described from the protobuf contract."""
    from faststream.specification import AsyncAPI

    from yiju.common.envelope import BY_TOPIC
    from yiju.common.topics import DEAD_LETTER_TOPICS

    spec = AsyncAPI(
        _service_broker(service),
        title=f"yiju {service} events",
        version="1.0.0",
        description=(
            f"The Kafka topics the {service} service consumes and publishes. Values are protobuf "
            "(protos/yiju/events/v1/order_events.proto), record key = order id, metadata in CloudEvents "
            f"binary-mode headers. Generated by {GENERATOR}; do not edit."
        ),
    ).to_specification()
    doc: dict[str, Any] = json.loads(spec.to_json())
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    schemas["CloudEventsHeaders"] = CLOUDEVENTS_HEADERS
    schemas["DeadLetterHeaders"] = DEAD_LETTER_HEADERS
    for server in doc.get("servers", {}).values():
        server["description"] = "Local default; set YIJU_KAFKA_BOOTSTRAP (any Kafka-protocol cluster)."
    for channel in doc.get("channels", {}).values():
        topic = channel["address"]
        event = BY_TOPIC.get(topic)
        for ref in channel.get("messages", {}).values():
            message = components["messages"][ref["$ref"].rsplit("/", 1)[-1]]
            if event is not None:
                full_name = event.message.DESCRIPTOR.full_name
                message.update(
                    name=event.type,
                    contentType="application/protobuf",
                    payload=protos.schema(f".{full_name}", schemas),
                    headers={"$ref": "#/components/schemas/CloudEventsHeaders"},
                    summary=f"{full_name} on {topic}",
                )
            elif topic in DEAD_LETTER_TOPICS:
                message.update(
                    name="dead-letter",
                    payload={"type": "string", "format": "binary", "description": "The original value."},
                    headers={"$ref": "#/components/schemas/DeadLetterHeaders"},
                    summary=f"Records a consumer group could not handle, on {topic}",
                )
            message.pop("correlationId", None)
    used = set(_refs({k: v for k, v in doc.items() if k != "components"})) | set(_refs(components))
    for name in [n for n in schemas if f"#/components/schemas/{n}" not in used]:
        del schemas[name]
    # faststream keeps publishers in a set: sort, so that the same code always gives the same file.
    for holder, keys in ((doc, ("channels", "operations")), (components, ("messages", "schemas"))):
        for key in keys:
            if key in holder:
                holder[key] = dict(sorted(holder[key].items()))
    return doc


# --- OpenAPI --------------------------------------------------------------------------------------------


def openapi() -> dict[str, Any] | None:
    """The intent service's HTTP API (FastAPI's OpenAPI), from an app built on unconnected clients; None
    when ``create_app`` wants something this builder does not know how to make."""
    import inspect
    import typing

    from yiju.common.broker import EventPublisher, create_broker
    from yiju.common.catalog import load_catalog
    from yiju.common.redis import create_redis
    from yiju.common.settings import Settings
    from yiju.intent import http_api
    from yiju.intent.health import PlatformHealth
    from yiju.intent.ingest import Ingest
    from yiju.intent.orders import OrderActions
    from yiju.intent.store import OrderStore

    settings = Settings()
    redis = create_redis(settings)  # clients connect lazily: nothing is reached
    publisher = EventPublisher(create_broker(settings, "intent"), "yiju/intent")
    store = OrderStore(redis)

    async def never() -> bool:
        return False

    made: dict[str, Any] = {
        "Ingest": Ingest(load_catalog(settings.catalog_dir), redis, store, publisher, settings),
        "OrderActions": OrderActions(store, publisher),
        "PlatformHealth": PlatformHealth(settings, never),
        "Settings": settings,
    }
    try:
        from yiju.intent.edge import Edge

        made["Edge"] = Edge(redis, settings)
    except ImportError:
        pass
    from yiju.intent.watchers import OrderWatchers

    made["OrderWatchers"] = OrderWatchers.from_settings(settings)  # connects lazily too
    hints = typing.get_type_hints(http_api.create_app)
    args = {}
    for name in inspect.signature(http_api.create_app).parameters:
        kind = getattr(hints.get(name), "__name__", "")
        if kind not in made:
            print(f"openapi: skipped (create_app wants {name}: {kind or '?'})", file=sys.stderr)
            return None
        args[name] = made[kind]
    return http_api.create_app(**args).openapi()


# --- Markdown --------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def events_markdown() -> str:
    from yiju.common.envelope import BY_TOPIC
    from yiju.common.topics import ALL_TOPICS, CONSUMER_GROUPS, INTENT_SUBMITTED

    producers: dict[str, list[str]] = {}
    for service in kafka_services():
        for topic in published_topics(service):
            producers.setdefault(topic, []).append(service)
    producers.setdefault(INTENT_SUBMITTED, []).append("clients")
    lines = [
        "# Kafka topics",
        "",
        f"Generated by `{GENERATOR}` from `services/common/topics.py`, `envelope.py` and the services; "
        "do not edit. Per-service AsyncAPI documents: `asyncapi/<service>.json`.",
        "",
        "| Topic | Event type | Protobuf message | Published by | Consumer groups |",
        "|---|---|---|---|---|",
    ]
    for topic in ALL_TOPICS:
        spec = BY_TOPIC.get(topic)
        groups = [f"`{g.name}` ({g.service})" for g in CONSUMER_GROUPS if topic in g.topics]
        lines.append(
            f"| `{topic}` | {f'`{spec.type}`' if spec else 'dead letters'} | "
            f"{f'`{spec.message.DESCRIPTOR.full_name}`' if spec else 'the original value'} | "
            f"{', '.join(producers.get(topic, [])) or '–'} | {', '.join(groups) or '–'} |"
        )
    return "\n".join(lines) + "\n"


def _rpc_type(name: str, streaming: bool) -> str:
    return ("stream " if streaming else "") + f"`{name.lstrip('.')}`"


def _type_name(fld: descriptor_pb2.FieldDescriptorProto) -> str:
    if fld.type in (_MESSAGE, _ENUM):
        return f"`{fld.type_name.lstrip('.')}`"
    return f"`{_TYPE_NAMES[fld.type]}`"


def protos_markdown(protos: Protos) -> str:
    lines = [
        "# Protobuf and gRPC reference",
        "",
        f"Generated by `{GENERATOR}` from `protos/`; do not edit. gRPC servers have reflection and "
        "`grpc.health.v1` on.",
        "",
    ]
    for file in sorted(protos.fds.file, key=lambda f: f.name):
        if not file.name.startswith("yiju/"):
            continue
        lines += [f"## `{file.name}`", "", f"Package `{file.package}`.", ""]
        if text := protos.comment(file.name, (2,)):  # the comment on the package statement
            lines += [text, ""]
        for s_index, service in enumerate(file.service):
            full = f"{file.package}.{service.name}"
            lines += [f"### Service `{full}`", ""]
            if text := protos.comment(file.name, (6, s_index)):
                lines += [text, ""]
            lines += ["| RPC | Request | Response | Description |", "|---|---|---|---|"]
            for m_index, method in enumerate(service.method):
                request = _rpc_type(method.input_type, method.client_streaming)
                response = _rpc_type(method.output_type, method.server_streaming)
                text = protos.comment(file.name, (6, s_index, 2, m_index))
                lines.append(f"| `/{full}/{method.name}` | {request} | {response} | {_cell(text)} |")
            lines.append("")
        for name, (message, msg_file, path) in protos.messages.items():
            if msg_file != file.name or message.options.map_entry:
                continue
            lines += [f"### Message `{name.lstrip('.')}`", ""]
            if text := protos.comment(file.name, path):
                lines += [text, ""]
            if not message.field:
                lines += ["No fields.", ""]
                continue
            lines += ["| Field | Number | Type | Description |", "|---|---|---|---|"]
            for f_index, fld in enumerate(message.field):
                kind = ("repeated " if fld.label == _REPEATED else "") + _type_name(fld)
                text = protos.comment(file.name, (*path, 2, f_index))
                lines.append(f"| `{fld.name}` | {fld.number} | {kind} | {_cell(text)} |")
            lines.append("")
        for name, (enum, enum_file, path) in protos.enums.items():
            if enum_file != file.name:
                continue
            lines += [f"### Enum `{name.lstrip('.')}`", ""]
            if text := protos.comment(file.name, path):
                lines += [text, ""]
            lines += ["| Value | Number | Description |", "|---|---|---|"]
            for v_index, value in enumerate(enum.value):
                text = protos.comment(file.name, (*path, 2, v_index))
                lines.append(f"| `{value.name}` | {value.number} | {_cell(text)} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- the whole build -------------------------------------------------------------------------------------


def build(out: Path = DEFAULT_OUT) -> list[Path]:
    """Writes everything into ``out`` (replacing what an earlier build wrote); returns the files."""
    protos = Protos.load()
    out.mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text(f"# Build output of `make docs` ({GENERATOR}): not committed.\n*\n")
    written: list[Path] = []
    specs = out / "asyncapi"
    specs.mkdir(exist_ok=True)
    for stale in specs.glob("*.json"):
        stale.unlink()
    for service in kafka_services():
        path = specs / f"{service}.json"
        path.write_text(json.dumps(asyncapi(service, protos), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    api = openapi()
    if api is not None:
        (out / "openapi.json").write_text(json.dumps(api, indent=2, ensure_ascii=False) + "\n")
        written.append(out / "openapi.json")
    for name, text in (("events.md", events_markdown()), ("protos.md", protos_markdown(protos))):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/generated)"
    )
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
