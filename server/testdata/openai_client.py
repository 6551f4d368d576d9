"""Drives a server with the official openai client.

usage: openai_client.py BASE_URL < calls.json > results.json

calls.json is {"concurrent": bool, "calls": [{"kind": "chat" | "completion",
"stream": bool, "args": {...}}]}; each call's args go to
client.chat.completions.create or client.completions.create as they are.
The results, in the order of the calls, give the text, the finish reason and
the usage (for a stream: the deltas joined, the last finish reason, and the
usage chunk), or the error's status and body.
"""

import concurrent.futures
import json
import sys

import openai


def call(client, c):
    kind, stream, args = c["kind"], c.get("stream", False), c["args"]
    create = client.chat.completions.create if kind == "chat" else client.completions.create
    try:
        if stream:
            text, finish, usage, chunks = "", None, None, 0
            for chunk in create(stream=True, **args):
                chunks += 1
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                for ch in chunk.choices:
                    piece = ch.delta.content if kind == "chat" else ch.text
                    text += piece or ""
                    if ch.finish_reason is not None:
                        finish = ch.finish_reason
            return {"text": text, "finish_reason": finish, "usage": usage, "chunks": chunks}
        r = create(**args)
        ch = r.choices[0]
        text = ch.message.content if kind == "chat" else ch.text
        return {"text": text, "finish_reason": ch.finish_reason, "usage": r.usage.model_dump(), "id": r.id,
                "model": r.model}
    except openai.APIStatusError as e:
        return {"status": e.status_code, "error": e.body}


def main():
    spec = json.load(sys.stdin)
    client = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=300)
    calls = spec["calls"]
    if spec.get("concurrent"):
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as ex:
            results = list(ex.map(lambda c: call(client, c), calls))
    else:
        results = [call(client, c) for c in calls]
    models = [m.id for m in client.models.list()]
    json.dump({"results": results, "models": models}, sys.stdout)


main()
