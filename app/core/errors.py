"""The one exception type for bad input: printed as one line, exit status 2."""


class UsageError(Exception):
  """Bad input from the user (flag, config key, data). The message names the problem and the fix.

  Library code raises it; entry scripts print `error: <message>` and exit with status 2. Any other
  exception reaching an entry script is a bug of ours and keeps its traceback.
  """
