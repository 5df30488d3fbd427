"""Report writers: JSON lines, HTML side-by-side page, terminal summary and exit codes."""

from scanner.reports.jsonl import JsonlWriter, read_results
from scanner.reports.summary import EXIT_CODE_MEANINGS, ExitCode, FailOn, Summary, exit_code, summarize

__all__ = ["JsonlWriter", "read_results", "EXIT_CODE_MEANINGS", "ExitCode", "FailOn", "Summary", "exit_code",
           "summarize"]
