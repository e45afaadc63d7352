"""Simple JavaScript functions as Jinja2 expressions, for ``atomiton migrate``.

The original Atomiton's flows hold small JavaScript functions (``item => item.price * 2``,
``row => row.active === 'true'``). This module reads the subset such functions use (a lexer
and a recursive-descent parser for expressions, arrow functions and ``return`` bodies) and
writes the Jinja2 expression that means the same, with notes where the two may behave
otherwise. It is our own because no well-kept JavaScript parser for Python is on PyPI
(esprima's last release is from 2018, pyjsparser's from 2019; tree-sitter's grammar would be a
compiled dependency for a one-off tool), and the subset is small: anything outside it raises
:class:`NotTranslated` saying what it met, and the caller keeps the JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NotTranslated", "Translation", "translate_expression", "translate_function"]

#: Names every translated expression may read as they are (the flow's variables, as
#: atomiton-lang-js gives them to JavaScript).
_ALWAYS = ("vars",)


class NotTranslated(ValueError):
    """JavaScript the translator does not turn into Jinja2; the message says what it met."""


@dataclass(frozen=True, slots=True)
class Translation:
    """A Jinja2 expression, and where it may behave otherwise than the JavaScript did."""

    expression: str
    notes: tuple[str, ...] = ()


_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)+", re.S)
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_$][\w$]*")
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"", re.S)
_PUNCT = re.compile(
    r"===|!==|\*\*|=>|==|!=|<=|>=|&&|\|\||\?\?|\?\.|\.\.\.|[-+*/%<>!?:.,;()\[\]{}=&|^~@#]"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "\n": ""}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num, str, name, op, tpl, end
    value: Any


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 == len(body):
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u" and body[i + 2 : i + 3] == "{":
            end = body.find("}", i)
            if end < 0:
                raise NotTranslated("a bad \\u{...} escape")
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "0" and not body[i + 2 : i + 3].isdigit():
            out.append("\0")
            i += 2
        elif nxt.isdigit():
            raise NotTranslated("an octal escape")
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text

    def tokens(self, pos: int = 0, *, in_template: bool = False) -> tuple[list[_Token], int]:
        """The tokens from ``pos`` to the end, or (``in_template``) to the ``}`` closing a
        ``${``; and the position after them."""
        text = self.text
        found: list[_Token] = []
        depth = 0
        while True:
            space = _SPACE.match(text, pos)
            if space:
                pos = space.end()
            if pos >= len(text):
                if in_template:
                    raise NotTranslated("an unterminated ${...} in a template literal")
                found.append(_Token("end", None))
                return found, pos
            ch = text[pos]
            if ch == "`":
                token, pos = self.template(pos)
                found.append(token)
                continue
            if ch in "'\"":
                m = _STRING.match(text, pos)
                if m is None:
                    raise NotTranslated("an unterminated string")
                found.append(_Token("str", _unescape(m.group()[1:-1])))
                pos = m.end()
                continue
            m = _NUMBER.match(text, pos)
            if m and (ch.isdigit() or (ch == "." and m.end() > pos + 1)):
                found.append(_Token("num", m.group()))
                pos = m.end()
                continue
            m = _NAME.match(text, pos)
            if m:
                found.append(_Token("name", m.group()))
                pos = m.end()
                continue
            m = _PUNCT.match(text, pos)
            if m is None:
                raise NotTranslated(f"the character {ch!r}")
            op = m.group()
            pos = m.end()
            if in_template and op == "}" and depth == 0:
                found.append(_Token("end", None))
                return found, pos
            depth += {"{": 1, "}": -1}.get(op, 0)
            found.append(_Token("op", op))

    def template(self, pos: int) -> tuple[_Token, int]:
        """A template literal from its opening backtick: text and ``${...}`` token lists."""
        text = self.text
        parts: list[Any] = []
        buf: list[str] = []
        pos += 1
        while True:
            if pos >= len(text):
                raise NotTranslated("an unterminated template literal")
            ch = text[pos]
            if ch == "`":
                parts.append(_unescape("".join(buf)))
                return _Token("tpl", parts), pos + 1
            if ch == "\\" and pos + 1 < len(text):
                buf.append(text[pos : pos + 2])
                pos += 2
            elif text.startswith("${", pos):
                parts.append(_unescape("".join(buf)))
                buf = []
                inner, pos = self.tokens(pos + 2, in_template=True)
                parts.append(inner)
            else:
                buf.append(ch)
                pos += 1


#: JavaScript's binary operators and their precedence (higher binds tighter).
_BINARY = {
    "??": 1,
    "||": 2,
    "&&": 3,
    "==": 4,
    "!=": 4,
    "===": 4,
    "!==": 4,
    "<": 5,
    ">": 5,
    "<=": 5,
    ">=": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "/": 7,
    "%": 7,
    "**": 8,
}
_UNSUPPORTED_WORDS = {
    "typeof": "`typeof`",
    "instanceof": "`instanceof`",
    "in": "the `in` operator",
    "new": "`new`",
    "void": "`void`",
    "delete": "`delete`",
    "await": "`await`",
    "yield": "`yield`",
    "this": "`this`",
    "function": "a nested function",
    "class": "a class",
}


class _Parser:
    """A small expression grammar of JavaScript; an AST of tuples."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.peek()
        self.i += 1
        return token

    def at(self, value: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind in ("op", "name") and token.value == value

    def accept(self, value: str) -> bool:
        if self.at(value):
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise NotTranslated(f"{self.describe(self.peek())} where {value!r} was expected")

    @staticmethod
    def describe(token: _Token) -> str:
        if token.kind == "end":
            return "the end"
        if token.kind == "tpl":
            return "a template literal"
        if token.kind == "str":
            return f"the string {token.value!r}"
        return f"{token.value!r}"

    def end(self) -> None:
        self.accept(";")
        if self.peek().kind != "end":
            token = self.peek()
            if token.kind == "op" and token.value in ("=", "+=", "-="):
                raise NotTranslated("an assignment")
            if token.kind == "op" and token.value in ("&", "|", "^", "~"):
                raise NotTranslated(f"the bitwise operator {token.value!r}")
            raise NotTranslated(f"{self.describe(token)} after the expression")

    # functions -----------------------------------------------------------------------------

    def function(self) -> tuple[list[str], Any]:
        """``x => e``, ``(a, b) => e``, ``x => { return e; }``, ``function (x) { return e; }``:
        the parameter names and the body."""
        if self.at("async"):
            raise NotTranslated("an async function")
        if self.accept("function"):
            if self.peek().kind == "name":
                self.next()
            self.expect("(")
            params = self.parameters()
            return params, self.block()
        if self.peek().kind == "name" and self.at("=>", 1):
            params = [self.next().value]
        elif self.at("("):
            self.next()
            params = self.parameters()
        else:
            raise NotTranslated("not a function (the original's functions are x => ...)")
        self.expect("=>")
        body = self.block() if self.at("{") else self.expression()
        return params, body

    def parameters(self) -> list[str]:
        """Names up to and including the closing parenthesis."""
        names: list[str] = []
        while not self.accept(")"):
            token = self.next()
            if token.kind != "name":
                if token.kind == "op" and token.value in ("{", "["):
                    raise NotTranslated("a destructuring parameter")
                if token.kind == "op" and token.value == "...":
                    raise NotTranslated("a rest parameter")
                raise NotTranslated(f"{self.describe(token)} in the parameter list")
            names.append(token.value)
            if self.at("="):
                raise NotTranslated("a default parameter value")
            if not self.at(")"):
                self.expect(",")
        return names

    def block(self) -> Any:
        self.expect("{")
        if not self.accept("return"):
            raise NotTranslated(
                "a function body with statements (only `x => expression` and "
                "`x => { return expression; }` are translated)"
            )
        body = self.expression()
        self.accept(";")
        if not self.accept("}"):
            raise NotTranslated(
                "a function body with more than a return statement (only `x => expression` "
                "and `x => { return expression; }` are translated)"
            )
        return body

    # expressions ---------------------------------------------------------------------------

    def expression(self) -> Any:
        test = self.binary(1)
        if self.accept("?"):
            yes = self.expression()
            self.expect(":")
            no = self.expression()
            return ("cond", test, yes, no)
        if self.at("=>"):
            raise NotTranslated("a nested function")
        return test

    def binary(self, floor: int) -> Any:
        left = self.unary()
        while True:
            token = self.peek()
            if token.kind == "name" and token.value in ("in", "instanceof"):
                raise NotTranslated(_UNSUPPORTED_WORDS[token.value])
            prec = _BINARY.get(token.value) if token.kind == "op" else None
            if prec is None or prec < floor:
                return left
            self.next()
            right = self.binary(prec if token.value == "**" else prec + 1)
            left = ("binary", token.value, left, right)

    def unary(self) -> Any:
        for op in ("!", "-", "+"):
            if self.accept(op):
                return ("unary", op, self.unary())
        token = self.peek()
        if token.kind == "op" and token.value in ("++", "--", "~"):
            raise NotTranslated(f"the operator {token.value!r}")
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            if self.accept("."):
                token = self.next()
                if token.kind != "name":
                    raise NotTranslated(f"{self.describe(token)} after '.'")
                node = ("member", node, token.value)
            elif self.at("?."):
                raise NotTranslated("optional chaining (?.)")
            elif self.accept("["):
                index = self.expression()
                self.expect("]")
                node = ("index", node, index)
            elif self.accept("("):
                node = ("call", node, self.arguments())
            elif self.peek().kind == "tpl":
                raise NotTranslated("a tagged template")
            else:
                return node

    def arguments(self) -> list[Any]:
        args: list[Any] = []
        while not self.accept(")"):
            if self.at("..."):
                raise NotTranslated("a spread argument (...)")
            if self.arrow_ahead():
                raise NotTranslated("a callback function (e.g. .map(x => ...))")
            args.append(self.expression())
            if not self.at(")"):
                self.expect(",")
        return args

    def arrow_ahead(self) -> bool:
        """Whether a function starts here (``x =>``, ``(a, b) =>``, ``function``)."""
        if self.at("function") or (self.peek().kind == "name" and self.at("=>", 1)):
            return True
        if not self.at("("):
            return False
        depth = 0
        for k in range(self.i, len(self.tokens)):
            token = self.tokens[k]
            if token.kind == "op" and token.value == "(":
                depth += 1
            elif token.kind == "op" and token.value == ")":
                depth -= 1
                if depth == 0:
                    nxt = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
                    return nxt is not None and nxt.kind == "op" and nxt.value == "=>"
        return False

    def primary(self) -> Any:
        if self.arrow_ahead():
            raise NotTranslated("a nested function")
        token = self.next()
        if token.kind == "num":
            return ("num", token.value)
        if token.kind == "str":
            return ("str", token.value)
        if token.kind == "tpl":
            parts: list[Any] = []
            for part in token.value:
                if isinstance(part, str):
                    parts.append(part)
                else:
                    inner = _Parser(part)
                    parts.append(inner.expression())
                    if inner.peek().kind != "end":
                        raise NotTranslated(f"{self.describe(inner.peek())} inside ${{...}}")
            return ("template", parts)
        if token.kind == "name":
            word = token.value
            if word in ("true", "false"):
                return ("bool", word == "true")
            if word == "null":
                return ("null",)
            if word == "undefined":
                return ("undefined",)
            if word in _UNSUPPORTED_WORDS:
                raise NotTranslated(_UNSUPPORTED_WORDS[word])
            return ("name", word)
        if token.kind == "op":
            if token.value == "(":
                inner_expr = self.expression()
                if self.at(","):
                    raise NotTranslated("the comma operator")
                self.expect(")")
                return inner_expr
            if token.value == "[":
                items: list[Any] = []
                while not self.accept("]"):
                    if self.at("..."):
                        raise NotTranslated("a spread (...)")
                    items.append(self.expression())
                    if not self.at("]"):
                        self.expect(",")
                return ("array", items)
            if token.value == "{":
                return self.object()
            if token.value == "/":
                raise NotTranslated("a regular expression")
        raise NotTranslated(f"{self.describe(token)}")

    def object(self) -> Any:
        entries: list[tuple[Any, Any]] = []
        while not self.accept("}"):
            if self.at("..."):
                raise NotTranslated("a spread (...)")
            token = self.next()
            if token.kind == "op" and token.value == "[":
                key: Any = self.expression()
                self.expect("]")
            elif token.kind in ("name", "str"):
                key = ("str", token.value)
            elif token.kind == "num":
                key = ("str", _number_text(token.value))
            else:
                raise NotTranslated(f"{self.describe(token)} as a key")
            if self.at("(") or (
                token.kind == "name"
                and token.value in ("get", "set", "async")
                and self.peek().kind == "name"
            ):
                raise NotTranslated("a method in an object literal")
            if self.accept(":"):
                value = self.expression()
            elif token.kind == "name" and (self.at(",") or self.at("}")):
                value = ("name", token.value)  # shorthand {price}
            else:
                raise NotTranslated(f"{self.describe(self.peek())} in an object literal")
            entries.append((key, value))
            if not self.at("}"):
                self.expect(",")
        return ("object", entries)


def _number_text(text: str) -> str:
    """A JavaScript number literal as Jinja2 (and Python) write it."""
    if text[:2] in ("0x", "0X"):
        return str(int(text, 16))
    if re.fullmatch(r"\d+", text):
        return str(int(text))
    return repr(float(text))


# Jinja2's precedence, loosest first.
_COND, _OR, _AND, _NOT, _CMP, _ADD, _CAT, _MUL, _POW, _UNARY, _FILTER, _ATOM = range(1, 13)

#: Property names written ``x['name']`` rather than ``x.name``: Jinja2 looks a dotted name
#: up as an attribute first, and a mapping's or a list's own methods would win.
_SUBSCRIPTED = frozenset(
    {
        *("clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem"),
        *("setdefault", "update", "values", "append", "count", "extend", "index"),
        *("insert", "remove", "reverse", "sort"),
        *("and", "or", "not", "in", "is", "if", "else", "true", "false", "none"),
        *("True", "False", "None"),
    }
)
_GLOBAL_OBJECTS = frozenset({"Math", "JSON", "Number", "Object", "Array", "Date", "String"})
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class _Out:
    text: str
    prec: int
    kind: str = "any"  # str, num, bool, none, any


def _quote(text: str) -> str:
    """A Jinja2 string literal. ``$`` is escaped: the engine reads ``$name`` as ``name``."""
    body = (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("$", "\\x24")
    )
    return f"'{body}'"


class _Emitter:
    def __init__(self, names: Mapping[str, str], free: Iterable[str]) -> None:
        self.names = dict(names)
        self.free = frozenset(free)
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @staticmethod
    def wrap(out: _Out, floor: int) -> str:
        return out.text if out.prec >= floor else f"({out.text})"

    def emit(self, node: Any) -> _Out:
        kind = node[0]
        method = getattr(self, f"_{kind}")
        result: _Out = method(*node[1:])
        return result

    def _num(self, text: str) -> _Out:
        return _Out(_number_text(text), _ATOM, "num")

    def _str(self, text: str) -> _Out:
        return _Out(_quote(text), _ATOM, "str")

    def _bool(self, value: bool) -> _Out:
        return _Out("true" if value else "false", _ATOM, "bool")

    def _null(self) -> _Out:
        return _Out("none", _ATOM, "none")

    def _undefined(self) -> _Out:
        return _Out("none", _ATOM, "none")

    def _name(self, name: str) -> _Out:
        if name in self.names:
            return _Out(self.names[name], _ATOM)
        if name in self.free or name in _ALWAYS:
            return _Out(name, _ATOM)
        if name in ("NaN", "Infinity"):
            raise NotTranslated(f"{name}")
        allowed = ", ".join(sorted({*self.names, *self.free})) or "none"
        raise NotTranslated(f"the name {name!r}, which is not one it is given (those: {allowed})")

    def _member(self, obj: Any, name: str) -> _Out:
        if obj[0] == "name" and obj[1] in _GLOBAL_OBJECTS and obj[1] not in self.names:
            raise NotTranslated(f"{obj[1]}.{name}")
        target = self.emit(obj)
        if name == "length":
            return _Out(f"{self.wrap(target, _FILTER)} | length", _FILTER, "num")
        if _ATTRIBUTE.fullmatch(name) and name not in _SUBSCRIPTED:
            return _Out(f"{self.wrap(target, _ATOM)}.{name}", _ATOM)
        return _Out(f"{self.wrap(target, _ATOM)}[{_quote(name)}]", _ATOM)

    def _index(self, obj: Any, index: Any) -> _Out:
        if index[0] == "unary" and index[1] == "-":
            raise NotTranslated("a negative index (undefined in JavaScript, from the end here)")
        return _Out(f"{self.wrap(self.emit(obj), _ATOM)}[{self.emit(index).text}]", _ATOM)

    def _unary(self, op: str, operand: Any) -> _Out:
        value = self.emit(operand)
        if op == "!":
            return _Out(f"not {self.wrap(value, _NOT)}", _NOT, "bool")
        if op == "-":
            return _Out(f"-{self.wrap(value, _FILTER)}", _UNARY, "num")
        raise NotTranslated("unary + (a conversion to a number)")

    def _cond(self, test: Any, yes: Any, no: Any) -> _Out:
        t, a, b = self.emit(test), self.emit(yes), self.emit(no)
        kind = a.kind if a.kind == b.kind else "any"
        return _Out(
            f"{self.wrap(a, _OR)} if {self.wrap(t, _OR)} else {self.wrap(b, _COND)}", _COND, kind
        )

    def _binary(self, op: str, left: Any, right: Any) -> _Out:
        if op in ("==", "!=", "===", "!=="):
            return self._equality(op, left, right)
        a, b = self.emit(left), self.emit(right)
        if op == "&&":
            return _Out(f"{self.wrap(a, _AND)} and {self.wrap(b, _AND + 1)}", _AND)
        if op == "||":
            return _Out(f"{self.wrap(a, _OR)} or {self.wrap(b, _OR + 1)}", _OR)
        if op == "??":
            self.note("a missing property is an error here, not undefined")
            return _Out(
                f"{self.wrap(a, _OR)} if {self.wrap(a, _FILTER)} is not none "
                f"else {self.wrap(b, _COND)}",
                _COND,
            )
        if op in ("<", ">", "<=", ">="):
            return _Out(f"{self.wrap(a, _ADD)} {op} {self.wrap(b, _ADD)}", _CMP, "bool")
        if op == "+" and "str" in (a.kind, b.kind):
            return _Out(f"{self.wrap(a, _CAT)} ~ {self.wrap(b, _CAT + 1)}", _CAT, "str")
        if op in ("+", "-"):
            if op == "+" and "num" not in (a.kind, b.kind):
                self.note("+ adds numbers or joins texts here, but not a text and a number")
            kind = "num" if a.kind == b.kind == "num" else "any"
            return _Out(f"{self.wrap(a, _ADD)} {op} {self.wrap(b, _ADD + 1)}", _ADD, kind)
        if op in ("*", "/", "%"):
            return _Out(f"{self.wrap(a, _MUL)} {op} {self.wrap(b, _MUL + 1)}", _MUL, "num")
        # "**": JavaScript's is right-associative, Jinja2's left: nested ones get parentheses
        return _Out(f"{self.wrap(a, _POW + 1)} ** {self.wrap(b, _POW + 1)}", _POW, "num")

    def _equality(self, op: str, left: Any, right: Any) -> _Out:
        negate = op.startswith("!")
        loose = len(op) == 2
        if right[0] in ("null", "undefined") or left[0] in ("null", "undefined"):
            other, empty = (left, right) if right[0] in ("null", "undefined") else (right, left)
            value = self.wrap(self.emit(other), _FILTER)
            if loose:  # == null: null or undefined
                if negate:
                    return _Out(f"{value} is defined and {value} is not none", _AND, "bool")
                return _Out(f"{value} is undefined or {value} is none", _OR, "bool")
            test = "undefined" if empty[0] == "undefined" else "none"
            if negate:
                test = "defined" if test == "undefined" else "not none"
            return _Out(f"{value} is {test}", _FILTER, "bool")
        a, b = self.emit(left), self.emit(right)
        if loose and not (a.kind == b.kind and a.kind != "any"):
            self.note(f"JavaScript's {op} converts types ('1' == 1); here it compares as {op}=")
        return _Out(
            f"{self.wrap(a, _ADD)} {'!=' if negate else '=='} {self.wrap(b, _ADD)}", _CMP, "bool"
        )

    def _array(self, items: list[Any]) -> _Out:
        return _Out("[" + ", ".join(self.emit(i).text for i in items) + "]", _ATOM)

    def _object(self, entries: list[tuple[Any, Any]]) -> _Out:
        pairs = [f"{self.emit(k).text}: {self.emit(v).text}" for k, v in entries]
        return _Out("{" + ", ".join(pairs) + "}", _ATOM)

    def _template(self, parts: list[Any]) -> _Out:
        pieces: list[_Out] = []
        for part in parts:
            if isinstance(part, str):
                if part:
                    pieces.append(self._str(part))
            else:
                pieces.append(self.emit(part))
        if not pieces:
            return _Out("''", _ATOM, "str")
        if len(pieces) == 1:
            only = pieces[0]
            if only.kind == "str":
                return only
            return _Out(f"{self.wrap(only, _FILTER)} | string", _FILTER, "str")
        if any(p.kind != "str" for p in pieces):
            self.note("a null value is written None here (null in JavaScript)")
        text = " ~ ".join(self.wrap(p, _CAT + 1) for p in pieces)
        return _Out(text, _CAT, "str")

    def _call(self, callee: Any, args: list[Any]) -> _Out:
        if callee[0] == "member":
            owner, name = callee[1], callee[2]
            if owner[0] == "name" and owner[1] in _GLOBAL_OBJECTS and owner[1] not in self.names:
                if owner[1] == "Math":
                    return self._math(name, args)
                raise NotTranslated(f"{owner[1]}.{name}()")
            return self._method(owner, name, args)
        if callee[0] == "name" and callee[1] not in self.names:
            return self._global(callee[1], args)
        raise NotTranslated("a call of a function value")

    def _args(self, args: list[Any], counts: Sequence[int], what: str) -> list[_Out]:
        if len(args) not in counts:
            raise NotTranslated(f"{what} with {len(args)} argument(s)")
        return [self.emit(a) for a in args]

    def _math(self, name: str, args: list[Any]) -> _Out:
        if name == "abs":
            (x,) = self._args(args, (1,), "Math.abs")
            return _Out(f"abs({x.text})", _ATOM, "num")
        if name in ("max", "min"):
            if len(args) < 2:
                raise NotTranslated(f"Math.{name} with fewer than 2 arguments")
            return _Out(f"{name}({', '.join(self.emit(a).text for a in args)})", _ATOM, "num")
        if name in ("floor", "ceil"):
            (x,) = self._args(args, (1,), f"Math.{name}")
            return _Out(f"{self.wrap(x, _FILTER)} | round(0, {name!r}) | int", _FILTER, "num")
        if name == "round":  # half up, as JavaScript rounds (Python rounds half to even)
            (x,) = self._args(args, (1,), "Math.round")
            return _Out(f"({self.wrap(x, _ADD)} + 0.5) | round(0, 'floor') | int", _FILTER, "num")
        if name == "sqrt":
            (x,) = self._args(args, (1,), "Math.sqrt")
            return _Out(f"{self.wrap(x, _POW + 1)} ** 0.5", _POW, "num")
        if name == "pow":
            x, y = self._args(args, (2,), "Math.pow")
            return _Out(f"{self.wrap(x, _POW + 1)} ** {self.wrap(y, _POW + 1)}", _POW, "num")
        raise NotTranslated(f"Math.{name}")

    def _global(self, name: str, args: list[Any]) -> _Out:
        if name == "parseFloat":
            (x,) = self._args(args, (1,), name)
            self.note("parseFloat('12px') is 12 in JavaScript, an error here")
            return _Out(f"float({x.text})", _ATOM, "num")
        if name == "Number":
            (x,) = self._args(args, (1,), name)
            self.note("Number('') is 0 in JavaScript, an error here")
            return _Out(f"float({x.text})", _ATOM, "num")
        if name == "parseInt":
            outs = self._args(args, (1, 2), name)
            self.note("parseInt('12px') is 12 in JavaScript, an error here")
            if len(outs) == 2 and outs[1].text != "10":
                return _Out(f"int({outs[0].text}, {outs[1].text})", _ATOM, "num")
            return _Out(f"int({outs[0].text})", _ATOM, "num")
        if name == "String":
            (x,) = self._args(args, (1,), name)
            self.note("String(null) is 'null' in JavaScript, 'None' here")
            return _Out(f"{self.wrap(x, _FILTER)} | string", _FILTER, "str")
        if name == "Boolean":
            (x,) = self._args(args, (1,), name)
            self.note("an empty list or mapping is true in JavaScript, false here")
            return _Out(f"bool({x.text})", _ATOM, "bool")
        if name in self.free or name in _ALWAYS:
            raise NotTranslated(f"a call of {name!r}")
        raise NotTranslated(f"the function {name}()")

    def _method(self, owner: Any, name: str, args: list[Any]) -> _Out:
        obj = self.emit(owner)
        target = self.wrap(obj, _ATOM)
        simple = {
            "toUpperCase": "upper",
            "toLowerCase": "lower",
            "trim": "strip",
            "trimStart": "lstrip",
            "trimEnd": "rstrip",
            "trimLeft": "lstrip",
            "trimRight": "rstrip",
        }
        if name in simple:
            self._args(args, (0,), f".{name}()")
            return _Out(f"{target}.{simple[name]}()", _ATOM, "str")
        if name in ("startsWith", "endsWith"):
            (x,) = self._args(args, (1,), f".{name}()")
            return _Out(f"{target}.{name.lower()}({x.text})", _ATOM, "bool")
        if name == "includes":
            (x,) = self._args(args, (1,), ".includes()")
            return _Out(f"{self.wrap(x, _ADD)} in {self.wrap(obj, _ADD)}", _CMP, "bool")
        if name == "toString":
            self._args(args, (0,), ".toString()")
            self.note("true.toString() is 'true' in JavaScript, 'True' here")
            return _Out(f"{self.wrap(obj, _FILTER)} | string", _FILTER, "str")
        if name == "toFixed":
            if len(args) != 1 or args[0][0] != "num" or not re.fullmatch(r"\d{1,2}", args[0][1]):
                raise NotTranslated(".toFixed() without a number of digits")
            return _Out(f"'%.{int(args[0][1])}f' | format({obj.text})", _FILTER, "str")
        if name == "join":
            outs = self._args(args, (0, 1), ".join()")
            sep = outs[0].text if outs else "','"
            return _Out(f"{self.wrap(obj, _FILTER)} | join({sep})", _FILTER, "str")
        if name == "split":
            if len(args) != 1 or args[0] == ("str", ""):
                raise NotTranslated(".split() without one separator")
            (x,) = self._args(args, (1,), ".split()")
            return _Out(f"{target}.split({x.text})", _ATOM)
        if name in ("replace", "replaceAll"):
            if len(args) != 2 or args[0][0] != "str":
                raise NotTranslated(f".{name}() of anything but a text")
            x, y = self._args(args, (2,), f".{name}()")
            once = ", 1" if name == "replace" else ""  # JavaScript's replace: the first only
            return _Out(f"{target}.replace({x.text}, {y.text}{once})", _ATOM, "str")
        if name == "slice":
            outs = self._args(args, (0, 1, 2), ".slice()")
            bounds = (
                ":".join(o.text for o in outs)
                if len(outs) == 2
                else (f"{outs[0].text}:" if outs else ":")
            )
            return _Out(f"{target}[{bounds}]", _ATOM, obj.kind)
        raise NotTranslated(f"the method .{name}()")


def _finish(emitter: _Emitter, body: Any) -> Translation:
    out = emitter.emit(body)
    _check_jinja(out.text)
    return Translation(out.text, tuple(emitter.notes))


def _check_jinja(expression: str) -> None:
    """The translation must compile: a translator's mistake is not translated."""
    import jinja2

    try:
        jinja2.Environment().compile_expression(expression)
    except jinja2.TemplateError as exc:  # pragma: no cover - a bug of the translator
        raise NotTranslated(f"its translation {expression!r} does not compile: {exc}") from None


def translate_function(code: str, arguments: Sequence[str] = ("item", "index")) -> Translation:
    """A simple JavaScript function (``row => row.active === 'true'``) as a Jinja2 expression
    over ``arguments``, the names its parameters have here (``item.active == 'true'``).

    Translated: ``x => expression`` and ``x => { return expression; }`` (and ``function``),
    over literals (numbers, texts, template literals, arrays, objects), property access,
    ``! && || ?? ?:``, comparisons (``=== null`` is ``is none``), arithmetic, a few methods
    of texts and lists (``toUpperCase``, ``trim``, ``includes``, ``startsWith``, ``split``,
    ``join``, ``slice``, ``replace``, ``toFixed``, ``length``) and of ``Math``
    (``abs max min round floor ceil sqrt pow``), ``parseFloat``, ``parseInt``, ``String``,
    ``Number``, ``Boolean``. Anything else raises :class:`NotTranslated` saying what it met.
    """
    parser = _Parser(_Lexer(code).tokens()[0])
    params, body = parser.function()
    parser.end()
    if len(params) > len(arguments):
        raise NotTranslated(
            f"it takes {len(params)} arguments; it is called with {len(arguments)} "
            f"({', '.join(arguments)})"
        )
    if len(set(params)) != len(params):
        raise NotTranslated("a parameter name given twice")
    emitter = _Emitter(dict(zip(params, arguments, strict=False)), ())
    return _finish(emitter, body)


def translate_expression(code: str, names: Sequence[str] = ()) -> Translation:
    """A JavaScript expression over ``names`` (``iteration < 10 && lastResult !== null``) as
    a Jinja2 expression (``iteration < 10 and lastResult is not none``); the same subset as
    :func:`translate_function`."""
    parser = _Parser(_Lexer(code).tokens()[0])
    body = parser.expression()
    parser.end()
    return _finish(_Emitter({}, names), body)


def _is_jinja(text: str) -> bool:
    import jinja2

    try:
        jinja2.Environment().compile_expression(re.sub(r"\$([A-Za-z_]\w*)", r"\1", text))
    except jinja2.TemplateError:
        return False
    return True


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
