"""Parses a gateway trace export (OTLP/HTTP JSON) with the OpenTelemetry protobuf schema
(`opentelemetry-proto`, PyPI): unknown fields, wrong types or bad id encodings fail.

    python3 -m venv /tmp/venv-otlp && /tmp/venv-otlp/bin/pip install -r bench/requirements-otlp.txt
    cargo test -p palisade-gateway --test gateway spans_   # writes otlp-traces.json
    /tmp/venv-otlp/bin/python bench/otlp_check.py $CARGO_TARGET_DIR/tmp/otlp-traces.json
"""
import base64
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

raw = json.load(open(sys.argv[1]))
# OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64 for
# bytes fields, so convert them as an OTLP receiver does before parsing.
for rs in raw["resourceSpans"]:
    for ss in rs["scopeSpans"]:
        for s in ss["spans"]:
            for k in ("traceId", "spanId", "parentSpanId"):
                if k in s:
                    s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
msg = json_format.ParseDict(raw, ExportTraceServiceRequest())
spans = [s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
for s in spans:
    assert len(s.trace_id) == 16 and len(s.span_id) == 8, s
    assert s.end_time_unix_nano >= s.start_time_unix_nano > 0
print(f"ok: {len(spans)} spans parse as ExportTraceServiceRequest:", [s.name for s in spans])
