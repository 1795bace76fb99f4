"""echo [-n] [-e] ARGS...: write the arguments, separated by blanks, then a newline (not with -n).

With -e the backslash escapes of coreutils' echo are interpreted: \\a \\b \\e
\\f \\n \\r \\t \\v \\\\, \\0NNN and \\NNN (octal), \\xHH (hex), and \\c (stop
here, no newline). The shell-lab traces print their ``&`` prompts this way
(``/bin/echo -e tsh> ./myspin 1 \\046``).
"""

import re

from userland.lib.fs import write_all

SIMPLE = {"a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
ESCAPE = re.compile(r"\\(0[0-7]{0,3}|[1-7][0-7]{0,2}|x[0-9a-fA-F]{1,2}|.)", re.S)


def unescape(text):
    """-e's escapes -> (text, stopped): stopped when a \\c ended the output."""
    out, at = [], 0
    for match in ESCAPE.finditer(text):
        out.append(text[at : match.start()])
        at = match.end()
        code = match.group(1)
        if code == "c":
            return "".join(out), True
        if code[0] in "01234567":
            out.append(chr(int(code, 8) & 0xFF))
        elif code[0] == "x" and len(code) > 1:
            out.append(chr(int(code[1:], 16)))
        else:
            out.append(SIMPLE.get(code, "\\" + code))
    out.append(text[at:])
    return "".join(out), False


async def main(sys, argv):
    args = argv[1:]
    newline, escapes = True, False
    while args and args[0] in ("-n", "-e", "-ne", "-en"):
        newline = newline and "n" not in args[0]
        escapes = escapes or "e" in args[0]
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text, stopped = unescape(text)
        newline = newline and not stopped
    await write_all(sys, 1, text + ("\n" if newline else ""))
    return 0
