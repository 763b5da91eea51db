"""Dialogs. All of them open non-modally (``open()`` / ``show()``): ``exec()`` would start a nested
event loop inside the qasync loop, which strands the running task (PITFALLS "qasync and Qt")."""
