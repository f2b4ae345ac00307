"""A provider stand-in that checks every request as the provider would.

It serves the three wire formats our adapters speak, on one loopback port:

  POST /v1/chat/completions                              OpenAI Chat Completions
  POST /v1/images/generations                            OpenAI Images (answered here)
  POST /v1/embeddings                                    OpenAI Embeddings (answered here)
  POST /v1/messages                                      Anthropic Messages
  POST /v1beta/models/{model}:generateContent            Gemini
  POST /v1beta/models/{model}:streamGenerateContent      Gemini, streamed

Each body is checked against the provider's published request types, from its official
Python SDK (the TypedDicts of `openai` and `anthropic`, with unknown fields refused; the
pydantic models of `google-genai`), and against the per-model rules the providers document
(see RULES below). On top of that it demands strict structured output, as the issue asks of
our adapters. A request that fails is answered with the provider's own 400 error shape and
never reaches the model. A request that passes goes on to the backend (the offline model
behind the same wire formats, `--backend`), whose answer is relayed as it is.

GET /_check/stats answers what was checked: per provider, the requests, the refused ones
with their reasons, and how many carried a strict schema or strict tools.

Usage: python server.py --backend http://127.0.0.1:PORT [--port 0]
It prints one JSON line, {"port": N}, once it listens.
"""

import argparse
import collections.abc
import json
import sys
import threading
import types as pytypes
import typing
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import typing_extensions as te
from anthropic.types import message_create_params as anthropic_params
from anthropic.types.model_param import ModelParam as AnthropicModel
from google.genai import types as gemini_types
from openai.types import embedding_create_params as embedding_params
from openai.types import image_generate_params as image_params
from openai.types.embedding_model import EmbeddingModel as OpenAiEmbeddingModel
from openai.types.chat import completion_create_params as openai_params
from openai.types.image_model import ImageModel as OpenAiImageModel
from openai.types.shared.chat_model import ChatModel as OpenAiModel


class Refused(Exception):
    """A request the provider would refuse: `param` names the field when there is one."""

    def __init__(self, message, param=None, code=None):
        super().__init__(message)
        self.param = param
        self.code = code


# ---------------------------------------------------------------------------------------
# Published request types: a TypedDict walk that refuses unknown fields and wrong types.
# pydantic would take TypedDicts too, but it validates `Iterable[...]` fields lazily, which
# would leave messages and tools unchecked.


def _allows_extra(typed_dict):
    config = getattr(typed_dict, "__pydantic_config__", None) or {}
    return config.get("extra") == "allow"


def _errors(value, tp, path):
    """Every way `value` breaks type `tp`, as 'path: what' strings."""
    if tp in (typing.Any, object):
        return []
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Annotated, te.Annotated):
        return _errors(value, args[0], path)
    if origin in (typing.Union, pytypes.UnionType):
        candidates = [_errors(value, arg, path) for arg in args]
        if any(not errors for errors in candidates):
            return []
        # Report against the member whose `type` literal the value names, if any.
        if isinstance(value, dict) and "type" in value:
            for arg, errors in zip(args, candidates):
                if te.is_typeddict(arg):
                    literal = typing.get_type_hints(arg).get("type")
                    if literal is not None and value["type"] in typing.get_args(literal):
                        return errors
        return [f"{path}: matches none of the accepted shapes ({candidates[0][0] if candidates[0] else ''})"]
    if origin in (typing.Literal, te.Literal):
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if te.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        hints = typing.get_type_hints(tp)
        errors = []
        for key in getattr(tp, "__required_keys__", ()):
            if key not in value:
                errors.append(f"{path}.{key}: required")
        for key, item in value.items():
            if key not in hints:
                if not _allows_extra(tp):
                    errors.append(f"{path}.{key}: unknown field")
                continue
            errors += _errors(item, hints[key], f"{path}.{key}")
        return errors
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) or (
        origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        item = args[0] if args else typing.Any
        return [e for i, v in enumerate(value) for e in _errors(v, item, f"{path}[{i}]")]
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        item = args[1] if len(args) > 1 else typing.Any
        return [e for k, v in value.items() for e in _errors(v, item, f"{path}.{k}")]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer"]
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number"]
    if tp is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string"]
    return []


def _check_types(body, tp, provider_error):
    errors = _errors(body, tp, "body")
    if errors:
        first = errors[0]
        field = first.split(":")[0].split(".")[-1].split("[")[0]
        raise Refused(provider_error(first, field), param=field)


def _models(alias):
    return {m for m in typing.get_args(typing.get_args(alias)[0])} if typing.get_origin(alias) in (
        typing.Union,
        pytypes.UnionType,
    ) else set(typing.get_args(alias))


# ---------------------------------------------------------------------------------------
# Strict shapes: what OpenAI's `strict: true` and Anthropic's strict outputs and tools take.


def strict_shape_errors(schema, path="schema"):
    errors = []
    if not isinstance(schema, dict):
        return errors
    if schema.get("type") == "object" or (
        isinstance(schema.get("type"), list) and "object" in schema["type"]
    ):
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            errors.append(f"{path}: additionalProperties must be false")
        if sorted(schema.get("required", [])) != sorted(props):
            errors.append(f"{path}: every property must be required")
        for name, prop in props.items():
            errors += strict_shape_errors(prop, f"{path}.{name}")
    if "items" in schema:
        errors += strict_shape_errors(schema["items"], f"{path}[]")
    return errors


# ---------------------------------------------------------------------------------------
# RULES: what each provider documents per model, beyond the request types.
#
# OpenAI, GPT-6 models (developers.openai.com/api/docs/models/gpt-6-sol, gpt-6-luna):
#   Chat Completions calls functions only with reasoning_effort none; sampling parameters
#   only with reasoning_effort none; reasoning models take max_completion_tokens.
# Anthropic (platform.claude.com/docs/en/models/sonnet-5-5/overview): Claude Sonnet 5.5
#   answers a forced tool choice with an error; manual extended thinking (type enabled) is
#   refused from Claude Sonnet 5 on; sampling parameters are deprecated.
# Gemini v1beta: `parameters` is the OpenAPI-subset Schema, which has no
#   additionalProperties; 2.5 models take thinkingBudget (not thinkingLevel) in their range.

OPENAI_MODELS = set(typing.get_args(OpenAiModel))
ANTHROPIC_MODELS = _models(AnthropicModel)
GEMINI_BUDGETS = {"gemini-2.5-pro": (128, 32768), "gemini-2.5-flash": (0, 24576), "gemini-2.5-flash-lite": (512, 24576)}


def check_openai(body, headers, seen):
    def error(message, field):
        return f"Invalid request: {message}"

    if not headers.get("authorization", "").startswith("Bearer "):
        raise Refused("You didn't provide an API key.", code="invalid_api_key")
    streaming = body.get("stream") is True
    _check_types(
        body,
        openai_params.CompletionCreateParamsStreaming if streaming else openai_params.CompletionCreateParamsNonStreaming,
        error,
    )
    model = body["model"]
    if model not in OPENAI_MODELS:
        raise Refused(f"The model `{model}` does not exist or you do not have access to it.", param="model", code="model_not_found")
    effort = body.get("reasoning_effort", "medium")
    if model.startswith("gpt-6"):
        for param in ("temperature", "top_p"):
            if param in body and effort != "none":
                raise Refused(f"Unsupported parameter: '{param}' is not supported with this model.", param=param, code="unsupported_parameter")
        if body.get("tools") and effort != "none":
            raise Refused(
                "Function tools with reasoning_effort are not supported for this model in /v1/chat/completions.",
                param="reasoning_effort",
                code="unsupported_value",
            )
        if "max_tokens" in body:
            raise Refused("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    format_ = body.get("response_format")
    if format_:
        schema = format_.get("json_schema", {})
        if schema.get("strict") is not True:
            raise Refused("this checker demands strict structured output: response_format.json_schema.strict", param="response_format")
        problems = strict_shape_errors(schema.get("schema", {}))
        if problems:
            raise Refused(f"Invalid schema for response_format '{schema.get('name')}': {problems[0]}", param="response_format")
        seen["strict_schemas"] += 1
    for i, tool in enumerate(body.get("tools", [])):
        function = tool.get("function", {})
        if function.get("strict") is not True:
            raise Refused(f"this checker demands strict tools: tools[{i}].function.strict", param="tools")
        problems = strict_shape_errors(function.get("parameters", {}))
        if problems:
            raise Refused(f"Invalid schema for function '{function.get('name')}': {problems[0]}", param="tools")
    if body.get("tools"):
        seen["strict_tools"] += 1


IMAGE_MODELS = set(typing.get_args(OpenAiImageModel))


def check_openai_image(body, headers, seen):
    def error(message, field):
        return f"Invalid request: {message}"

    if not headers.get("authorization", "").startswith("Bearer "):
        raise Refused("You didn't provide an API key.", code="invalid_api_key")
    _check_types(body, image_params.ImageGenerateParamsNonStreaming, error)
    model = body.get("model", "dall-e-2")
    if model not in IMAGE_MODELS:
        raise Refused(f"The model `{model}` does not exist or you do not have access to it.", param="model", code="model_not_found")
    if model.startswith("gpt-image") and "response_format" in body:
        raise Refused("Unknown parameter: 'response_format'.", param="response_format", code="unknown_parameter")
    if model in ("gpt-image-1", "gpt-image-1-mini"):
        raise Refused(f"The model `{model}` has been deprecated.", param="model", code="model_not_found")
    seen["images"] = seen.get("images", 0) + 1


def check_openai_embeddings(body, headers, seen):
    def error(message, field):
        return f"Invalid request: {message}"

    if not headers.get("authorization", "").startswith("Bearer "):
        raise Refused("You didn't provide an API key.", code="invalid_api_key")
    _check_types(body, embedding_params.EmbeddingCreateParams, error)
    model = body["model"]
    if model not in typing.get_args(OpenAiEmbeddingModel):
        raise Refused(f"The model `{model}` does not exist or you do not have access to it.", param="model", code="model_not_found")
    # Only the third generation can be shortened; ada-002 is always 1536.
    if "dimensions" in body and model == "text-embedding-ada-002":
        raise Refused("This model does not support specifying dimensions.", param="dimensions")
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    if not texts or any(not isinstance(t, str) or not t for t in texts):
        raise Refused("'$.input' is invalid: each input must be a non-empty string.", param="input")
    seen["embeddings"] = seen.get("embeddings", 0) + 1


def embedding_of(text, dimensions):
    """A unit vector by feature hashing of the words: texts sharing words are close."""
    import hashlib
    import math

    vector = [0.0] * dimensions
    for word in "".join(c.lower() if c.isalnum() else " " for c in text).split():
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:2], "little") % dimensions] += 1.0 if digest[2] & 1 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def one_pixel_png():
    """The smallest valid PNG: one opaque pixel, for the checker's own image answers."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x2e\x7d\x32\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def check_anthropic(body, headers, seen):
    def error(message, field):
        if field in ("temperature", "top_p", "top_k"):
            return f"`{field}` is deprecated for this model."
        return message

    if not headers.get("x-api-key"):
        raise Refused("x-api-key header is required")
    if not headers.get("anthropic-version"):
        raise Refused("anthropic-version header is required")
    streaming = body.get("stream") is True
    _check_types(
        body,
        anthropic_params.MessageCreateParamsStreaming if streaming else anthropic_params.MessageCreateParamsNonStreaming,
        error,
    )
    model = body["model"]
    if model not in ANTHROPIC_MODELS:
        raise Refused(f"model: {model}", param="model")
    choice = body.get("tool_choice", {}).get("type")
    if model.startswith("claude-sonnet-5-5") and choice in ("tool", "any"):
        raise Refused("Forced tool use is not supported with this model: use output_config.format", param="tool_choice")
    if model.startswith(("claude-sonnet-5", "claude-haiku-5", "claude-opus-5")) and body.get("thinking", {}).get("type") == "enabled":
        raise Refused("thinking.type enabled is not supported for this model: use adaptive", param="thinking")
    schema = body.get("output_config", {}).get("format", {}).get("schema")
    if schema is not None:
        problems = strict_shape_errors(schema)
        if problems:
            raise Refused(f"output_config.format.schema: {problems[0]}", param="output_config")
        seen["strict_schemas"] += 1
    for i, tool in enumerate(body.get("tools", [])):
        if tool.get("strict") is not True:
            raise Refused(f"this checker demands strict tools: tools.{i}.strict", param="tools")
        problems = strict_shape_errors(tool.get("input_schema", {}))
        if problems:
            raise Refused(f"tools.{i}.input_schema: {problems[0]}", param="tools")
    if body.get("tools"):
        seen["strict_tools"] += 1


GEMINI_FIELDS = {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent", "labels"}


def check_gemini(model, body, headers, seen):
    if not headers.get("x-goog-api-key"):
        raise Refused("Method doesn't allow unregistered callers. Please use API Key.")
    for key in body:
        if key not in GEMINI_FIELDS:
            raise Refused(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.', param=key)
    try:
        for content in body.get("contents", []):
            gemini_types.Content.model_validate(content)
        if "systemInstruction" in body:
            gemini_types.Content.model_validate(body["systemInstruction"])
        for tool in body.get("tools", []):
            gemini_types.Tool.model_validate(tool)
        config = gemini_types.GenerationConfig.model_validate(body.get("generationConfig", {}))
    except Exception as e:  # pydantic's ValidationError names the field
        raise Refused(f"Invalid JSON payload received. {str(e).splitlines()[0]} {str(e).splitlines()[1:2]}")
    for t, tool in enumerate(body.get("tools", [])):
        for d, declaration in enumerate(tool.get("functionDeclarations", [])):
            if "additionalProperties" in json.dumps(declaration.get("parameters", {})):
                raise Refused(
                    f'Invalid JSON payload received. Unknown name "additionalProperties" at '
                    f"'tools[{t}].function_declarations[{d}].parameters': Cannot find field.",
                    param="additionalProperties",
                )
            if "parametersJsonSchema" not in declaration:
                raise Refused(f"this checker demands JSON Schema in parametersJsonSchema: tools[{t}].functionDeclarations[{d}]")
    thinking = config.thinking_config
    if thinking is not None and model in GEMINI_BUDGETS:
        if thinking.thinking_level is not None:
            raise Refused("thinking_level is not supported by this model.", param="thinkingLevel")
        low, high = GEMINI_BUDGETS[model]
        budget = thinking.thinking_budget
        if budget is not None and budget != -1 and not (low <= budget <= high):
            raise Refused(f"The thinking budget {budget} is invalid. Please choose a value between {low} and {high}.", param="thinkingBudget")
    if config.response_mime_type == "application/json":
        if config.response_json_schema is None:
            raise Refused("this checker demands responseJsonSchema with application/json")
        seen["strict_schemas"] += 1
    if body.get("tools"):
        seen["strict_tools"] += 1


def openai_error(e):
    return {"error": {"message": str(e), "type": "invalid_request_error", "param": e.param, "code": e.code}}


def anthropic_error(e):
    return {"type": "error", "error": {"type": "invalid_request_error", "message": str(e)}}


def gemini_error(e):
    return {"error": {"code": 400, "message": str(e), "status": "INVALID_ARGUMENT"}}


# ---------------------------------------------------------------------------------------


class Checker(BaseHTTPRequestHandler):
    backend = ""
    lock = threading.Lock()
    stats = {p: {"requests": 0, "refused": [], "strict_schemas": 0, "strict_tools": 0} for p in ("openai", "anthropic", "gemini")}

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def relay_stream(self, answer, content_type):
        """Passes a stream on piece by piece as the backend sends it (no length: the body
        ends when the connection closes), so its pace reaches the client unchanged."""
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            while True:
                piece = answer.read1(65536)
                if not piece:
                    break
                self.wfile.write(piece)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (an idle timeout, a cut stream)
        self.close_connection = True

    def do_GET(self):
        if self.path == "/_check/stats":
            with self.lock:
                return self.reply(200, self.stats)
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        path = self.path.split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if path == "/v1/chat/completions":
            provider, check, shape = "openai", lambda b, s: check_openai(b, headers, s), openai_error
        elif path == "/v1/images/generations":
            provider, check, shape = "openai", lambda b, s: check_openai_image(b, headers, s), openai_error
        elif path == "/v1/embeddings":
            provider, check, shape = "openai", lambda b, s: check_openai_embeddings(b, headers, s), openai_error
        elif path == "/v1/messages":
            provider, check, shape = "anthropic", lambda b, s: check_anthropic(b, headers, s), anthropic_error
        elif path.startswith("/v1beta/models/") and ":" in path:
            model = path[len("/v1beta/models/"):].split(":")[0]
            provider, check, shape = "gemini", lambda b, s: check_gemini(model, b, headers, s), gemini_error
        else:
            return self.reply(404, {"error": f"no such endpoint {path}"})
        seen = {"strict_schemas": 0, "strict_tools": 0}
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise Refused("the body must be a JSON object")
            check(body, seen)
        except (Refused, ValueError) as e:
            refusal = e if isinstance(e, Refused) else Refused(f"the body is not JSON: {e}")
            with self.lock:
                self.stats[provider]["requests"] += 1
                self.stats[provider]["refused"].append(str(refusal))
            return self.reply(400, shape(refusal))
        with self.lock:
            self.stats[provider]["requests"] += 1
            for key, n in seen.items():
                self.stats[provider][key] = self.stats[provider].get(key, 0) + n
        if path == "/v1/images/generations":
            # No backend draws: the checker answers as the Images API does for GPT Image models.
            import base64

            image = base64.b64encode(one_pixel_png()).decode()
            usage = {"input_tokens": 20, "input_tokens_details": {"image_tokens": 0, "text_tokens": 20}, "output_tokens": 1056, "total_tokens": 1076}
            return self.reply(200, {"created": 1795640000, "data": [{"b64_json": image}], "output_format": "png", "usage": usage})
        if path == "/v1/embeddings":
            # No backend embeds: the checker answers in the Embeddings API's shape.
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            dimensions = body.get("dimensions", 1536)
            data = [{"object": "embedding", "index": i, "embedding": embedding_of(t, dimensions)} for i, t in enumerate(texts)]
            tokens = sum(len(t.split()) for t in texts)
            return self.reply(200, {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        forward = urllib.request.Request(self.backend + self.path, data=raw, method="POST", headers={"Content-Type": "application/json"})
        try:
            # The timeout is per read: a stream at a real model's pace may run for minutes.
            with urllib.request.urlopen(forward, timeout=300) as answer:
                content_type = answer.headers.get("Content-Type", "application/json")
                if content_type.startswith("text/event-stream"):
                    return self.relay_stream(answer, content_type)
                self.reply(answer.status, answer.read(), content_type)
        except urllib.error.HTTPError as e:
            self.reply(e.code, e.read(), e.headers.get("Content-Type", "application/json"))
        except urllib.error.URLError as e:
            self.reply(502, {"error": {"message": f"the backend could not be reached: {e.reason}"}})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    Checker.backend = args.backend.rstrip("/")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Checker)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
