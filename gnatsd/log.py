"""Logging in nats-server's format. Ports nats-server `logger/log.go` (Logger, fileLogger,
label formats) and `server/log.go` (ConfigureLogger, ReOpenLogFile).

    [1234] 2006/01/02 15:04:05.000000 [INF] Server is ready
    [1234] [INF] Server is ready                               (-T=false)

The server logs through the standard `logging` module, on the "gnatsd" logger: Go's
Noticef is `log.info`, Warnf `log.warning`, Errorf `log.error`, Fatalf `log.critical`,
Debugf `log.debug`, and Tracef is `log.log(TRACE, ...)` (or `tracef`). Debug and trace are
separate switches, as in Go: `-V` shows [TRC] lines without [DBG] ones.

Importing this module configures nothing. Only `configure_logging(opts)` does, and the
`gnatsd` command calls it; an embedding program keeps its own logging setup.
"""
from __future__ import annotations

import logging
import os
import sys
import time

LOGGER_NAME = "gnatsd"

# Go: Tracef. Below DEBUG, so that a plain DEBUG level does not show it.
TRACE = 5

_LABELS = ((logging.CRITICAL, "FTL"), (logging.ERROR, "ERR"), (logging.WARNING, "WRN"), (logging.INFO, "INF"),
           (logging.DEBUG, "DBG"), (0, "TRC"))
# Go: setColoredLabelFormats (used on a terminal).
_COLORS = {"FTL": "31", "ERR": "31", "WRN": "0;93", "INF": "32", "DBG": "36", "TRC": "33"}


def level_label(levelno):
    """The three-letter label of a level; levels between Go's take the one below."""
    for threshold, label in _LABELS:
        if levelno >= threshold:
            return label
    return "TRC"


def tracef(logger, msg, *args):
    """Go: Tracef. Cheap when tracing is off."""
    if logger.isEnabledFor(TRACE):
        logger.log(TRACE, msg, *args)


class Formatter(logging.Formatter):
    """Go: the prefix and flags of logger.Logger: `[pid] ` then, with `logtime`, local time to
    the microsecond, then the label."""

    def __init__(self, logtime=True, pid=True, colors=False):
        super().__init__()
        self.logtime = logtime
        self.prefix = f"[{os.getpid()}] " if pid else ""
        if colors:
            self.labels = {label: f"[\x1b[{code}m{label}\x1b[0m] " for label, code in _COLORS.items()}
        else:
            self.labels = {label: f"[{label}] " for label in _COLORS}

    def format_time(self, created):
        """Go: log.LstdFlags | log.Lmicroseconds."""
        t = time.localtime(created)
        usec = int((created - int(created)) * 1_000_000)
        return "%04d/%02d/%02d %02d:%02d:%02d.%06d " % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
                                                         t.tm_sec, usec)

    def format(self, record):
        parts = [self.prefix]
        if self.logtime:
            parts.append(self.format_time(record.created))
        parts.append(self.labels[level_label(record.levelno)])
        parts.append(record.getMessage())
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append("\n")
            parts.append(record.exc_text)
        return "".join(parts)


class LevelFilter(logging.Filter):
    """Go: Logger.debug / Logger.trace. Debug and trace are independent switches."""

    def __init__(self, debug, trace):
        super().__init__()
        self.debug = debug
        self.trace = trace

    def filter(self, record):
        if record.levelno < logging.DEBUG:
            return self.trace
        if record.levelno < logging.INFO:
            return self.debug
        return True


class LogFileHandler(logging.StreamHandler):
    """Go: fileLogger. Appends to a file (created 0660), can re-open it (SIGUSR1, after the
    file was moved away) and, with a size limit, rotates it to `name.YYYY.MM.DD.hh.mm.ss.ns`."""

    def __init__(self, filename, size_limit=0):
        self.filename = os.path.abspath(filename)
        self.size_limit = size_limit
        self.out = 0  # bytes in the current file (Go: fileLogger.out)
        super().__init__(self._open())

    def _open(self):
        fd = os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o660)
        f = os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")
        self.out = os.fstat(fd).st_size
        return f

    def reopen(self):
        """Close the file and open the same path again (Go: ReOpenLogFile). Raises OSError."""
        self.acquire()
        try:
            new = self._open()
            old, self.stream = self.stream, new
            old.close()
        finally:
            self.release()

    def emit(self, record):
        try:
            line = self.format(record) + "\n"
            self.stream.write(line)
            self.stream.flush()
            self.out += len(line.encode("utf-8", "backslashreplace"))
            if self.size_limit > 0 and self.out > self.size_limit:
                self.rotate()
        except Exception:  # logging must never take the server down (logging.Handler.handleError)
            self.handleError(record)

    def rotate(self):
        """Go: fileLogger.Write past the limit. Lock is held on entry (called from emit)."""
        now = time.time()
        t = time.localtime(now)
        ns = int((now - int(now)) * 1e9)
        backup = "%s.%04d.%02d.%02d.%02d.%02d.%02d.%09d" % (self.filename, t.tm_year, t.tm_mon, t.tm_mday,
                                                           t.tm_hour, t.tm_min, t.tm_sec, ns)
        self.stream.close()
        os.rename(self.filename, backup)
        self.stream = self._open()
        record = logging.LogRecord(LOGGER_NAME, logging.INFO, __file__, 0, "Rotated log, backup saved as %r",
                                   (backup,), None)
        line = self.format(record) + "\n"
        self.stream.write(line)
        self.stream.flush()
        self.out = len(line.encode("utf-8", "backslashreplace"))

    def close(self):
        self.acquire()
        try:
            if self.stream and not self.stream.closed:
                self.stream.flush()
                self.stream.close()
        finally:
            self.release()
        logging.Handler.close(self)


_handler = None  # the handler configure_logging installed


def configure_logging(opts, stream=None, logger_name=LOGGER_NAME):
    """Go: Server.ConfigureLogger. Send the "gnatsd" logger to `opts.log_file`, else to
    `stream` (default stderr), in nats-server's format, at the levels of `opts.debug` and
    `opts.trace`. Replaces what an earlier call installed. Returns the handler.

    Raises OSError when the log file cannot be opened.
    """
    global _handler
    if opts.log_file:
        handler = LogFileHandler(opts.log_file, opts.log_size_limit)
        colors = False
    else:
        stream = stream if stream is not None else sys.stderr
        handler = logging.StreamHandler(stream)
        colors = _is_terminal(stream)
    handler.setFormatter(Formatter(logtime=opts.logtime, pid=True, colors=colors))
    handler.addFilter(LevelFilter(opts.debug, opts.trace))
    logging.addLevelName(TRACE, "TRACE")
    logger = logging.getLogger(logger_name)
    if _handler is not None:
        logger.removeHandler(_handler)
        _handler.close()
    logger.addHandler(handler)
    logger.setLevel(TRACE if opts.trace else logging.DEBUG if opts.debug else logging.INFO)
    logger.propagate = False
    _handler = handler
    return handler


def logging_configured():
    """Whether configure_logging installed a handler (the `gnatsd` command; not in-process use)."""
    return _handler is not None


def _is_terminal(stream):
    """Go: colors only when stderr is a character device."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def reopen_log_file():
    """Go: Server.ReOpenLogFile. Re-open the log file (after `mv` for rotation: SIGUSR1)."""
    log = logging.getLogger(LOGGER_NAME)
    if _handler is None:
        log.info("File log re-open ignored, no logger")
        return
    if not isinstance(_handler, LogFileHandler):
        log.info("File log re-open ignored, not a file logger")
        return
    try:
        _handler.reopen()
    except OSError as e:
        log.error("Unable to re-open the log file %s: %s", _handler.filename, e)
        return
    log.info("File log re-opened")


def close_logging(logger_name=LOGGER_NAME):
    """Remove and close what configure_logging installed (at exit)."""
    global _handler
    if _handler is None:
        return
    logging.getLogger(logger_name).removeHandler(_handler)
    _handler.close()
    _handler = None
