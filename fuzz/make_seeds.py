#!/usr/bin/env python3
"""Write the seed corpora and libFuzzer dictionaries of the fuzz targets.

Seeds come from two places:
  * botocore's protocol test vectors (models/protocol-tests/input/*.json): every case's
    serialized request, aimed (by the selector bytes) at the model built from its own suite;
  * the real vendored models the targets use: one well-formed request per operation, with
    every top-level input member set to a plausible value of its type.

The input layout (4 selector bytes, then "METHOD URI\\n", header lines, a blank line, the body)
and the order of each target's models must match fuzz/fuzz_targets/common/mod.rs.

Usage: make_seeds.py REPO_ROOT OUT_DIR   (writes OUT_DIR/<target>/seed-*, OUT_DIR/<target>.dict)
"""

import base64
import hashlib
import json
import os
import struct
import sys

# target -> (real models, vector files), in the order the Rust targets load them.
TARGETS = {
    "query_form": (["sts", "iam", "ec2"], ["query", "ec2"]),
    "json_body": (["logs", "ecs"], ["json", "json_1_0", "json_1_0-query-compatible"]),
    "rest_json": (["lambda"], ["rest-json"]),
    "rest_xml": (["s3"], ["rest-xml"]),
    "cbor": (
        ["cloudwatch"],
        [
            "smithy-rpc-v2-cbor",
            "smithy-rpc-v2-cbor-query-compatible",
            "smithy-rpc-v2-cbor-non-query-compatible",
        ],
    ),
}
MAX_OPS_PER_MODEL = 160
MAX_DICT = 1500

SIGNING = {"cloudwatch": "monitoring"}
AKID = "AKIDEXAMPLE"
FAKE_SIG = "0" * 64


def auth_header(service, region="us-east-1"):
    return (
        f"AWS4-HMAC-SHA256 Credential={AKID}/20150830/{region}/{service}/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={FAKE_SIG}"
    )


def encode(selector, method, uri, headers, body):
    head = f"{method} {uri}\n" + "".join(f"{k}: {v}\n" for k, v in headers) + "\n"
    return bytes(selector) + head.encode("utf-8", "replace") + body


def selector(model, op, flags):
    return [model & 0xFF, op & 0xFF, (op >> 8) & 0xFF, flags]


# ---- values for a shape ----------------------------------------------------------------

SCALARS_TEXT = {
    "string": "example",
    "integer": "1",
    "long": "2",
    "short": "3",
    "byte": "4",
    "float": "1.5",
    "double": "2.5",
    "bigdecimal": "1.25",
    "biginteger": "7",
    "boolean": "true",
    "timestamp": "2015-01-25T08:00:00Z",
    "blob": "YmxvYg==",
}


def enum_or(shape, default):
    enum = shape.get("enum")
    return enum[0] if enum else default


def json_value(model, ref, depth=0):
    shape = model["shapes"].get(ref["shape"], {})
    t = shape.get("type")
    if depth > 4:
        return None
    if t == "structure":
        if shape.get("document"):
            return {"doc": [1, "two"]}
        out = {}
        for name, mref in shape.get("members", {}).items():
            v = json_value(model, mref, depth + 1)
            if v is not None:
                out[mref.get("locationName", name) if depth == 0 else name] = v
            if shape.get("union"):
                break
        return out
    if t == "list":
        v = json_value(model, shape["member"], depth + 1)
        return [] if v is None else [v]
    if t == "map":
        v = json_value(model, shape["value"], depth + 1)
        return {} if v is None else {"key": v}
    if t in ("integer", "long", "short", "byte", "biginteger"):
        return 1
    if t in ("float", "double", "bigdecimal"):
        return 1.5
    if t == "boolean":
        return True
    if t == "timestamp":
        return 1422172800
    if t == "blob":
        return "YmxvYg=="
    return enum_or(shape, "example")


def query_params(model, ref, prefix, ec2, depth=0):
    shape = model["shapes"].get(ref["shape"], {})
    t = shape.get("type")
    if depth > 4:
        return []
    if t == "structure":
        out = []
        for name, mref in shape.get("members", {}).items():
            if ec2:
                key = mref.get("queryName") or (
                    mref["locationName"][:1].upper() + mref["locationName"][1:]
                    if "locationName" in mref
                    else name
                )
            else:
                key = mref.get("locationName", name)
            out += query_params(model, mref, f"{prefix}.{key}" if prefix else key, ec2, depth + 1)
        return out
    if t == "list":
        member = shape["member"]
        if ec2 or shape.get("flattened") or ref.get("flattened"):
            p = f"{prefix}.1"
        else:
            p = f"{prefix}.{member.get('locationName', 'member')}.1"
        return query_params(model, member, p, ec2, depth + 1)
    if t == "map":
        entry = prefix + ".1" if shape.get("flattened") else prefix + ".entry.1"
        k = shape["key"].get("locationName", "key")
        v = shape["value"].get("locationName", "value")
        return [(f"{entry}.{k}", "key")] + query_params(
            model, shape["value"], f"{entry}.{v}", ec2, depth + 1
        )
    return [(prefix, enum_or(shape, SCALARS_TEXT.get(t, "example")))]


def xml_value(model, ref, name, depth=0):
    shape = model["shapes"].get(ref["shape"], {})
    t = shape.get("type")
    if depth > 4:
        return ""
    if t == "structure":
        inner = ""
        for mname, mref in shape.get("members", {}).items():
            if mref.get("location"):
                continue
            inner += xml_value(model, mref, mref.get("locationName", mname), depth + 1)
        return f"<{name}>{inner}</{name}>"
    if t == "list":
        member = shape["member"]
        if shape.get("flattened") or ref.get("flattened"):
            return xml_value(model, member, name, depth + 1)
        return f"<{name}>{xml_value(model, member, member.get('locationName', 'member'), depth + 1)}</{name}>"
    if t == "map":
        k = shape["key"].get("locationName", "key")
        v = shape["value"].get("locationName", "value")
        entry = f"<{k}>key</{k}>{xml_value(model, shape['value'], v, depth + 1)}"
        return f"<{name}><entry>{entry}</entry></{name}>"
    return f"<{name}>{enum_or(shape, SCALARS_TEXT.get(t, 'example'))}</{name}>"


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 256:
        return bytes([major << 5 | 24, n])
    if n < 65536:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    return bytes([major << 5 | 26]) + struct.pack(">I", n)


def cbor(v):
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if v is None:
        return b"\xf6"
    if isinstance(v, int):
        return cbor_head(0, v) if v >= 0 else cbor_head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        return cbor_head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return cbor_head(3, len(b)) + b
    if isinstance(v, list):
        return cbor_head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return cbor_head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def cbor_value(model, ref, depth=0):
    shape = model["shapes"].get(ref["shape"], {})
    t = shape.get("type")
    if t == "timestamp":
        return b"\xc1" + cbor(1422172800)  # tag 1, epoch seconds
    if t == "blob":
        return cbor(b"blob")
    if t == "structure" and depth <= 4:
        items = [
            cbor(name) + cbor_value(model, mref, depth + 1)
            for name, mref in shape.get("members", {}).items()
        ]
        return cbor_head(5, len(items)) + b"".join(items)
    if t == "list" and depth <= 4:
        return cbor_head(4, 1) + cbor_value(model, shape["member"], depth + 1)
    if t == "map" and depth <= 4:
        return cbor_head(5, 1) + cbor("key") + cbor_value(model, shape["value"], depth + 1)
    v = json_value(model, ref, depth)
    return cbor(v)


# ---- one request per operation of a real model -------------------------------------------


def rest_request(model, op, xml):
    inp = op.get("input")
    shape = model["shapes"].get(inp["shape"], {}) if inp else {}
    uri = op["http"]["requestUri"]
    headers = []
    query = []
    body_members = {}
    for name, mref in shape.get("members", {}).items():
        loc = mref.get("location")
        mshape = model["shapes"].get(mref["shape"], {})
        text = enum_or(mshape, SCALARS_TEXT.get(mshape.get("type"), "example"))
        if loc == "uri":
            label = mref.get("locationName", name)
            uri = uri.replace("{%s+}" % label, "a/b").replace("{%s}" % label, "label")
        elif loc == "header":
            headers.append((mref.get("locationName", name), text))
        elif loc == "headers":
            headers.append((mref.get("locationName", "") + "meta", "value"))
        elif loc == "querystring":
            if mshape.get("type") == "map":
                query.append("mapkey=value")
            else:
                query.append(f"{mref.get('locationName', name)}={text}")
        else:
            body_members[name] = mref
    if query:
        uri += ("&" if "?" in uri else "?") + "&".join(query)
    body = b""
    payload = shape.get("payload")
    if payload:
        pref = shape["members"][payload]
        pshape = model["shapes"].get(pref["shape"], {})
        if pshape.get("type") == "structure":
            if xml:
                body = xml_value(model, pref, pref.get("locationName", payload)).encode()
            else:
                body = json.dumps(json_value(model, pref, 1)).encode()
        else:
            body = b"payload bytes"
    elif body_members:
        if xml:
            inner = "".join(
                xml_value(model, r, r.get("locationName", n)) for n, r in body_members.items()
            )
            body = f"<{inp['shape']}>{inner}</{inp['shape']}>".encode()
        else:
            body = json.dumps(
                {n: json_value(model, r, 1) for n, r in body_members.items()}
            ).encode()
    ctype = "application/xml" if xml else "application/json"
    return op["http"]["method"], uri, headers + [("Content-Type", ctype)], body


def real_request(service, model, op):
    proto = model["metadata"]["protocol"]
    inp = op.get("input")
    if proto in ("query", "ec2"):
        params = [("Action", op["name"]), ("Version", model["metadata"]["apiVersion"])]
        if inp:
            params += query_params(model, inp, "", proto == "ec2")
        from urllib.parse import quote

        body = "&".join(f"{quote(k, safe='.')}={quote(v, safe='')}" for k, v in params)
        return "POST", "/", [("Content-Type", "application/x-www-form-urlencoded")], body.encode()
    if proto == "json":
        body = json.dumps(json_value(model, inp) if inp else {}).encode()
        headers = [
            ("X-Amz-Target", f"{model['metadata']['targetPrefix']}.{op['name']}"),
            ("Content-Type", f"application/x-amz-json-{model['metadata'].get('jsonVersion', '1.0')}"),
        ]
        return "POST", "/", headers, body
    if proto == "smithy-rpc-v2-cbor":
        body = cbor_value(model, inp) if inp else cbor({})
        uri = f"/service/{model['metadata']['targetPrefix']}/operation/{op['name']}"
        headers = [("smithy-protocol", "rpc-v2-cbor"), ("Content-Type", "application/cbor")]
        return "POST", uri, headers, body
    return rest_request(model, op, proto == "rest-xml")


def spread(items, n):
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


# ---- dictionaries ------------------------------------------------------------------------

COMMON_TOKENS = [
    "Action=", "Version=", "&", "=", ".member.", ".entry.", ".key", ".value", ".1", "%20",
    "X-Amz-Target", "Content-Type", "application/x-amz-json-1.1", "application/x-amz-json-1.0",
    "application/x-www-form-urlencoded", "application/cbor", "smithy-protocol", "rpc-v2-cbor",
    "application/json", "application/xml", "Authorization", "X-Amz-Date", "Host",
    "AWS4-HMAC-SHA256", "Credential=", "SignedHeaders=", "Signature=", "aws4_request",
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders",
    "X-Amz-Expires", "X-Amz-Security-Token", "x-amz-content-sha256", "UNSIGNED-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "20150830T123600Z", "20150830", "us-east-1",
    "true", "false", "null", "NaN", "Infinity", "-Infinity", "1e309", "-0", "9223372036854775808",
    "2015-01-25T08:00:00Z", "Sun, 25 Jan 2015 08:00:00 GMT", "1422172800.5",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "xmlns=", "xmlns:xsi=", "<![CDATA[", "]]>",
    "&amp;", "&#x1F600;", "&#65;", "<member>", "</member>", "<entry>", "<key>", "<value>",
    "{", "}", "[", "]", "\":", "\\u0000", "\\ud800", "__type", "/service/", "/operation/",
    # CBOR heads: indefinite map, break, indefinite array, epoch tag, float64/16/32.
    b"\xbf", b"\xff", b"\x9f", b"\xc1", b"\xfb", b"\xf9", b"\xfa",
]


def dict_line(token):
    b = token.encode("utf-8") if isinstance(token, str) else token
    out = ""
    for c in b:
        if c in (0x22, 0x5C) or c < 0x20 or c > 0x7E:
            out += "\\x%02X" % c
        else:
            out += chr(c)
    return f'"{out}"'


def model_tokens(model):
    seen = []
    for name in model["operations"]:
        seen.append(name)
    for sname, shape in model["shapes"].items():
        for mname, mref in shape.get("members", {}).items():
            seen.append(mname)
            for k in ("locationName", "queryName"):
                if k in mref:
                    seen.append(mref[k])
    return seen


def write_dict(path, tokens):
    out, have = [], set()
    for t in COMMON_TOKENS + tokens:
        if t and t not in have and len(t) <= 64:
            have.add(t)
            out.append(dict_line(t))
        if len(out) >= MAX_DICT:
            break
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---- main --------------------------------------------------------------------------------


class Corpus:
    def __init__(self, out, target):
        self.dir = os.path.join(out, target)
        os.makedirs(self.dir, exist_ok=True)
        self.count = 0

    def add(self, data):
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.count += 1


def vector_requests(root, fname):
    """(suite index, op index within the suite model, request) for every case of a file."""
    with open(os.path.join(root, "models/protocol-tests/input", fname + ".json")) as f:
        suites = json.load(f)
    for si, suite in enumerate(suites):
        ops = []
        for case in suite["cases"]:
            name = case["given"]["name"]
            if name not in ops:
                ops.append(name)
        for case in suite["cases"]:
            s = case["serialized"]
            body = s.get("body") or ""
            if fname.startswith("smithy-rpc-v2-cbor"):
                body = base64.b64decode(body)
            else:
                body = body.encode()
            headers = list((s.get("headers") or {}).items())
            if s.get("host"):
                headers.append(("Host", s["host"]))
            yield si, len(suites), ops.index(case["given"]["name"]), (
                s["method"], s["uri"], headers, body
            ), suite["metadata"]


def main():
    root, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    route = Corpus(out, "route")
    totals = {}
    for target, (reals, files) in TARGETS.items():
        corpus = Corpus(out, target)
        tokens = []
        for mi, service in enumerate(reals):
            with open(os.path.join(root, "models", service, "service-2.json")) as f:
                model = json.load(f)
            tokens += model_tokens(model)
            signing = SIGNING.get(service, service)
            names = list(model["operations"])
            for oi, name in spread(list(enumerate(names)), MAX_OPS_PER_MODEL):
                op = dict(model["operations"][name], name=name)
                method, uri, headers, body = real_request(service, model, op)
                corpus.add(encode(selector(mi, oi, 1), method, uri, headers, body))
                # Without the raw flag the target stamps the operation on it again.
                corpus.add(encode(selector(mi, oi, 0), method, uri, headers, body))
                route.add(
                    encode([0, 0, 0, 1], method, uri,
                           headers + [("Authorization", auth_header(signing))], body)
                )
            route.add(encode([0, 0, 0, 1], "POST", "/", headers, body))
        base = len(reals)
        for fname in files:
            nsuites = 0
            for si, n, oi, (method, uri, headers, body), meta in vector_requests(root, fname):
                nsuites = n
                corpus.add(encode(selector(base + si, oi, 1), method, uri, headers, body))
                route.add(encode([0, 0, 0, 1], method, uri, headers, body))
            base += nsuites
        write_dict(os.path.join(out, target + ".dict"), tokens)
        totals[target] = corpus.count
    write_dict(os.path.join(out, "route.dict"), [])
    totals["route"] = route.count

    sig = Corpus(out, "sigv4")
    date = ("X-Amz-Date", "20150830T123600Z")
    host = ("Host", "example.amazonaws.com")
    sig_seeds = [
        ("POST", "/", [host, date, ("Authorization", auth_header("sts"))], b"Action=GetCallerIdentity&Version=2011-06-15"),
        ("GET", "/?Param2=value2&Param1=value1", [host, date, ("Authorization", auth_header("service").replace("content-type;", ""))], b""),
        ("GET", "/bucket/key%20with%20space?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" + FAKE_SIG, [host], b""),
        ("GET", "/?Action=ListUsers&Version=2010-05-08&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiam%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Security-Token=token&X-Amz-Signature=" + FAKE_SIG, [host], b""),
        ("PUT", "/bucket/key", [host, date, ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "5"), ("Authorization", auth_header("s3").replace("content-type;", "").replace("x-amz-date", "x-amz-content-sha256;x-amz-date"))], b"5;chunk-signature=" + FAKE_SIG.encode() + b"\r\nhello\r\n0;chunk-signature=" + FAKE_SIG.encode() + b"\r\n\r\n"),
        ("PUT", "/bucket/key", [host, date, ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("Authorization", auth_header("s3"))], b"body"),
        ("POST", "/", [host, ("Date", "Sun, 30 Aug 2015 12:36:00 GMT"), ("X-Amz-Security-Token", "token"), ("Authorization", auth_header("logs", "eu-west-1"))], b"{}"),
        ("GET", "/?AWSAccessKeyId=AKIDEXAMPLE&Signature=abc%3D&SignatureVersion=2&Timestamp=2015-08-30T12%3A36%3A00Z", [host], b""),
        ("POST", "/", [host, date, ("Authorization", "AWS AKIDEXAMPLE:abc=")], b""),
    ]
    for method, uri, headers, body in sig_seeds:
        for flags in (0, 2, 4, 6):
            payload = hashlib.sha256(body).hexdigest().encode() if flags & 2 else body
            sig.add(encode([0, 0, 0, flags], method, uri, headers, payload))
    write_dict(os.path.join(out, "sigv4.dict"), [])
    totals["sigv4"] = sig.count
    print(" ".join(f"{k}={v}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
