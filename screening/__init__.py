"""The screening language: how a buyer, a contract and a basket say which credits they want.

Pure: parse text into an expression, format it back, and judge one credit (a project and
vintage, with its attributes at one moment) against it. No I/O, no clock: a rolling vintage
window is judged against the year the caller passes.
"""
