"""The JavaScript host: one evaluation in a fresh V8 isolate, in a process of its own.

Run as a script (``python -I _host.py``) by :mod:`atomiton_lang_js.sandbox`, never imported
by the plugin: it needs nothing but the standard library and mini-racer. It reads one request
from standard input, a JSON header line then the arguments as JSON text (spliced into the
script as a literal: JSON is JavaScript, NaN and Infinity included), and writes one reply: a
JSON header line, then the value as JSON text when there is one. Then it leaves with
``os._exit``, without tearing V8 down, which a builtin still running (``fill`` of a huge
array) would hold up for seconds.

Limits: ``timeLimit`` (ms, from compiling the code to its value, promises awaited) and
``heapLimit`` (bytes) twice over: V8's hard heap limit, and the growth of this process's
resident memory since the code started, which counts what V8's heap does not
(``ArrayBuffer`` backing stores). A builtin that V8 cannot interrupt is still stopped: the
reply goes out and the process ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

#: How often the time and memory limits are looked at, in seconds.
WATCH_S = 0.005

#: Defines ``console`` (collecting what is printed, up to the limit) before the code runs.
CONSOLE = """
(() => {
  const out = [];
  let size = 0, cut = false;
  const limit = %d;
  const show = (v) => {
    if (typeof v === 'string') return v;
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; }
    catch (e) { try { return String(v); } catch (e2) { return '[unprintable]'; } }
  };
  const write = (...args) => {
    if (cut) return;
    const line = args.map(show).join(' ');
    if (size + line.length + 1 > limit) {
      out.push(line.slice(0, Math.max(0, limit - size)));
      cut = true;
      return;
    }
    out.push(line);
    size += line.length + 1;
  };
  const console = {};
  for (const name of ['log', 'info', 'warn', 'error', 'debug', 'trace']) console[name] = write;
  Object.defineProperty(globalThis, 'console', {value: console, writable: true});
  const stdout = () => ({text: out.join('\\n'), cut});
  Object.defineProperty(globalThis, '__atomiton_stdout', {value: stdout});
})();
"""

#: Applies the code's value: called once, or per item (map, filter, reduce), promises
#: awaited; the reply is left in ``__atomiton_reply``. The work that is not waiting on a promise
#: happens in this script's own evaluation, and the host reads the reply with evaluations of
#: its own, never with a call into JavaScript that would wait for code still running (its
#: watchdog could not act until then).
RUN = """
(() => {
  const a = %s;
  const op = %s;
  const reply = (head, text) => {
    const o = __atomiton_stdout();
    head.stdout = o.text;
    head.stdoutCut = o.cut;
    globalThis.__atomiton_reply = JSON.stringify(head) + '\\n' + text;
  };
  const fail = (stage, e) => {
    let name = 'Error', message = '', stack = null;
    try {
      if (e instanceof Error) {
        name = String(e.name);
        message = String(e.message);
        stack = String(e.stack);
      } else {
        name = e === null ? 'null' : typeof e;
        message = String(e);
      }
    } catch (e2) { message = '[a value that cannot be shown]'; }
    reply({ok: false, kind: 'thrown', stage, name, message, stack}, '');
  };
  const then = (v, next) => {
    try {
      if (v !== null && (typeof v === 'object' || typeof v === 'function') &&
          typeof v.then === 'function') {
        v.then((w) => then(w, next), (e) => fail('run', e));
      } else {
        next(v);
      }
    } catch (e) { fail('run', e); }
  };
  const finish = (v) => {
    let text;
    try { text = JSON.stringify(v); } catch (e) { return fail('result', e); }
    reply({ok: true, undefined: text === undefined}, text === undefined ? 'null' : text);
  };
  const apply = (v) => {
    if (op === 'call') return then(typeof v === 'function' ? v(a.argument) : v, finish);
    if (typeof v !== 'function') {
      return reply({ok: false, kind: 'notFunction', type: v === null ? 'null' : typeof v}, '');
    }
    const items = a.items;
    if (op === 'map') return then(items.map((item, index) => v(item, index)), finish);
    if (op === 'filter') return then(items.filter((item, index) => v(item, index)), finish);
    return then(items.reduce((acc, item, index) => v(acc, item, index), a.initial), finish);
  };
  const applied = (v) => {
    try { apply(v); } catch (e) { fail('run', e); }
  };
  try { then(__atomiton_code(...a.values), applied); } catch (e) { fail('run', e); }
  return 0;
})()
"""


def _resident() -> int:
    """This process's resident memory in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _answer(head: dict[str, Any], text: str = "") -> None:
    view = memoryview((json.dumps(head) + "\n" + text).encode("utf-8", "surrogatepass"))
    while view:
        view = view[os.write(1, view) :]
    os._exit(0)


def _define(names: list[str], code: str, *, is_async: bool, expression: bool) -> str:
    """The code as a function of the names, its first line on line 2 of the script."""
    params = ", ".join(names)
    if expression:  # an arrow's expression body: V8 places errors in it, not at a `return`
        body = code.rstrip().rstrip(";")
        head = f"globalThis.__atomiton_code = ({'async ' if is_async else ''}({params}) => ("
        tail = "\n));"
    else:
        body = code
        head = f"globalThis.__atomiton_code = ({'async ' if is_async else ''}function ({params}) {{"
        tail = "\n});"
    return f"{head}\n{body}{tail}\n//# sourceURL=code.js\n"


async def _evaluate(mr: Any, header: dict[str, Any], arguments: str) -> str:
    from py_mini_racer import JSParseException

    names, code, is_async = header["names"], header["code"], bool(header.get("async"))
    try:
        await mr.eval_cancelable(_define(names, code, is_async=is_async, expression=True))
    except JSParseException:
        try:
            await mr.eval_cancelable(_define(names, code, is_async=is_async, expression=False))
        except JSParseException as exc:
            _answer({"ok": False, "kind": "syntax", "message": str(exc)})
    # strict JSON goes through JSON.parse, far lighter than a literal; NaN needs the literal
    literal = f"JSON.parse({json.dumps(arguments)})" if header.get("strict") else arguments
    await mr.eval_cancelable(RUN % (literal, json.dumps(header["operation"])))
    while True:  # promises the code awaits settle between these evaluations
        reply = await mr.eval_cancelable("globalThis.__atomiton_reply")
        if isinstance(reply, str):
            return reply
        await asyncio.sleep(WATCH_S)


async def main() -> None:
    raw = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    first, _, arguments = raw.partition("\n")
    header = json.loads(first)
    from py_mini_racer import JSOOMException, MiniRacer

    mr = MiniRacer()
    heap_limit = int(header["heapLimit"])
    mr.set_hard_memory_limit(heap_limit)
    mr.eval(CONSOLE % int(header["stdoutLimit"]))
    base = _resident()
    started = time.monotonic()
    deadline = started + float(header["timeLimit"]) / 1000
    task = asyncio.ensure_future(_evaluate(mr, header, arguments))
    while True:
        done, _ = await asyncio.wait({task}, timeout=WATCH_S)
        if done:
            break
        grown = _resident() - base if base else 0
        if grown > heap_limit:
            _answer({"ok": False, "kind": "memory", "grown": grown})
        if time.monotonic() > deadline:
            _answer({"ok": False, "kind": "timeout"})
    ms = (time.monotonic() - started) * 1000
    try:
        text = task.result()
    except JSOOMException:
        _answer({"ok": False, "kind": "memory"})
    except Exception as exc:  # V8 gave up on the code otherwise: terminated, not convertible
        _answer({"ok": False, "kind": "host", "message": f"{type(exc).__name__}: {exc}"})
    head_text, _, value = text.partition("\n")
    head = json.loads(head_text)
    head["ms"] = ms
    _answer(head, value)


if __name__ == "__main__":
    asyncio.run(main())
