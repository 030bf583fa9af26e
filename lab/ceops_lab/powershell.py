r"""An interpreter for a small subset of PowerShell 7, so that the lab's WS-Management endpoint (winrm.py) can run
WHATEVER script a client sends, as a Windows management host would, instead of comparing it with a copy. The parser is
powershell_syntax.py; this file runs what it parsed.

It is built from PowerShell's documented behaviour (about_Parsing, about_Operators, about_Splatting,
about_Try_Catch_Finally, about_Preference_Variables, about_Automatic_Variables, ConvertFrom-Json / ConvertTo-Json),
never from any client's text. What is outside the subset is REFUSED with a PowerShell-shaped error, never guessed:
a construct the parser does not know is a ParserError before anything runs (PowerShell parses the whole script
first), a command it does not know is "The term 'X' is not recognized ..." (CommandNotFoundException), a .NET member
it does not emulate is "Method invocation failed because [T] does not contain a method named 'X'.".

The subset
  statements   pipelines; assignment `=` to $var, $var.Member, $var[index], [Type]::StaticProperty; if / elseif /
               else; foreach ($x in ...); while; break; continue; try / catch (untyped) / finally; throw; exit
  expressions  $variables ($_ / $PSItem, $true, $false, $null, preference variables); 'single' and "double" quoted
               strings ($var and $(...) expansion, backtick escapes, the typographic quotes PowerShell also accepts);
               integers and decimals; @(...), $(...), (...); @{...} and [ordered]@{...}; { script blocks };
               [Type] literals and casts; .Member, .Method(...), [Type]::Member, [index]; the comma operator;
               -not ! -and -or; -eq -ne -gt -ge -lt -le -like -notlike -contains -notcontains -in -notin -is
               -isnot; + (numbers, strings, arrays, hashtables)
  commands     names and `& <expression>` (a name or a script block, never parsed as script), named parameters
               (-Name value, -Name:value, unique prefixes, switches), positional arguments, splatting @hashtable and
               @array, pipelines; the common parameters -ErrorAction -WarningAction -WarningVariable -ErrorVariable
               (and -Verbose / -Debug, accepted and silent)
  built-ins    ConvertFrom-Json, ConvertTo-Json (-Depth, -Compress), ForEach-Object (-Process), Write-Output,
               Write-Warning, Write-Error, Invoke-Expression (so that a script which evaluates data is as injectable
               here as on a real host); the host (winrm_host.py) adds Import-Module and the Exchange Online commands
  .NET         [Console]::Out / Error (.WriteLine, .Write, .Flush), [Console]::In (.ReadLine, .ReadToEnd),
               [Console]::OutputEncoding / InputEncoding, [System.Text.Encoding]::UTF8 / ASCII / Unicode,
               [string]::IsNullOrEmpty / IsNullOrWhiteSpace, .GetType().FullName / .Name, .ToString(), string .Length
               .Trim() .ToLower() .ToUpper() .StartsWith() .Contains(), .Count / .Length of arrays and hashtables,
               hashtable .ContainsKey() .Add() .Remove() .Keys .Values, PSCustomObject .PSObject.Properties
               (.Name / .Value), ErrorRecord .Exception (.Message, .GetType(), .InnerException), .CategoryInfo
               (.Category, .Reason), .FullyQualifiedErrorId
  errors       terminating vs non-terminating errors, $ErrorActionPreference and -ErrorAction (Stop, Continue,
               SilentlyContinue, Ignore), statement- vs script-terminating errors, $_ in catch, errors written to
               stderr as CLIXML (as powershell writes them when its output is redirected), the exit code
               (1 after an uncaught terminating error or when the last statement failed, `exit N`)

Values: strings, numbers and booleans are Python's; arrays are lists; hashtables PSHashtable (case-insensitive keys,
insertion order); PSCustomObjects PSObject; "no output" is AUTOMATION_NULL, which is $null except that it
enumerates to nothing (@($output) of a command that wrote nothing is empty, as in PowerShell).

Not emulated (lab/README.md lists them): streaming pipelines (each command of a pipeline runs to completion before
the next), console formatting of objects (an object written to the output appears as its string form), functions,
typed catch, switch / do / for, here-strings, redirection, -f / -replace / -match / -split / -join, arithmetic other
than +, scopes beyond the script and script blocks, strict mode, Windows PowerShell 5.1's differences (its
ConvertTo-Json escapes), and every module and .NET member not listed above.
"""

import fnmatch
import json
import math
from xml.sax.saxutils import escape

from .powershell_syntax import ParseError, parse

# ----- values ------------------------------------------------------------------------------------------------------


class _AutomationNull:
    """What a command that wrote nothing returns: $null, but it enumerates to nothing."""

    def __repr__(self):
        return "AutomationNull"


AUTOMATION_NULL = _AutomationNull()


def is_null(value):
    return value is None or value is AUTOMATION_NULL


class CIDict:
    """Case-insensitive keys in insertion order; the first spelling of a key is kept."""

    def __init__(self, pairs=()):
        self._data = {}
        for key, value in pairs:
            self[key] = value

    @staticmethod
    def _norm(key):
        return key.lower() if isinstance(key, str) else key

    def __contains__(self, key):
        return self._norm(key) in self._data

    def __getitem__(self, key):
        return self._data[self._norm(key)][1]

    def __setitem__(self, key, value):
        norm = self._norm(key)
        if norm in self._data:
            self._data[norm][1] = value
        else:
            self._data[norm] = [key, value]

    def __delitem__(self, key):
        del self._data[self._norm(key)]

    def __len__(self):
        return len(self._data)

    def get(self, key, default=None):
        entry = self._data.get(self._norm(key))
        return entry[1] if entry else default

    def key_of(self, key):
        return self._data[self._norm(key)][0]

    def items(self):
        return [(k, v) for k, v in self._data.values()]

    def keys(self):
        return [k for k, _ in self._data.values()]

    def values(self):
        return [v for _, v in self._data.values()]


class PSHashtable(CIDict):
    def __init__(self, pairs=(), ordered=False):
        super().__init__(pairs)
        self.ordered = ordered


class PSObject:
    """A PSCustomObject: note properties, case-insensitive, in order."""

    type_name = "System.Management.Automation.PSCustomObject"

    def __init__(self, pairs=()):
        self.properties = CIDict(pairs)


class NoteProperty:
    type_name = "System.Management.Automation.PSNoteProperty"

    def __init__(self, name, value):
        self.Name = name
        self.Value = value


class TypeRef:
    type_name = "System.RuntimeType"

    def __init__(self, full_name, check=None):
        self.full_name = full_name
        self.check = check

    @property
    def name(self):
        return self.full_name.rsplit(".", 1)[-1]


class EnumValue:
    def __init__(self, type_name, name, number):
        self.type_name, self.name, self.number = type_name, name, number


ERROR_CATEGORIES = ("NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument", "InvalidData",
                    "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError", "NotImplemented", "NotInstalled",
                    "ObjectNotFound", "OperationStopped", "OperationTimeout", "SyntaxError", "ParserError", "PermissionDenied",
                    "ResourceBusy", "ResourceExists", "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr", "SecurityError",
                    "ProtocolError", "ConnectionError", "AuthenticationError", "LimitsExceeded", "QuotaExceeded", "NotEnabled")


class PSException:
    def __init__(self, type_name, message):
        self.type_name = type_name
        self.message = message


class ErrorRecord:
    type_name = "System.Management.Automation.ErrorRecord"

    def __init__(self, message, type_name="System.Management.Automation.RuntimeException", category="NotSpecified", error_id=None,
                 activity=""):
        self.exception = PSException(type_name, message)
        self.category = category if category in ERROR_CATEGORIES else "NotSpecified"
        self.error_id = error_id or type_name.rsplit(".", 1)[-1]
        self.activity = activity


class WarningRecord:
    type_name = "System.Management.Automation.WarningRecord"

    def __init__(self, message):
        self.message = message


class ScriptBlock:
    type_name = "System.Management.Automation.ScriptBlock"

    def __init__(self, statements, text):
        self.statements = statements
        self.text = text


class Encoding:
    def __init__(self, codec, web_name, type_name):
        self.codec, self.web_name, self.type_name = codec, web_name, type_name


ENCODINGS = {"utf8": Encoding("utf-8", "utf-8", "System.Text.UTF8Encoding"), "ascii": Encoding("ascii", "us-ascii", "System.Text.ASCIIEncoding"),
             "unicode": Encoding("utf-16-le", "utf-16", "System.Text.UnicodeEncoding"),
             "default": Encoding("utf-8", "utf-8", "System.Text.UTF8Encoding")}
OEM_ENCODING = Encoding("cp437", "IBM437", "System.Text.OSEncoding")  # a console's code page on an en-US Windows host


# ----- errors and control flow -------------------------------------------------------------------------------------
class PSError(Exception):
    """A terminating error. script=True: `throw` and friends end the script unless caught; otherwise only the
    statement, unless $ErrorActionPreference is Stop."""

    def __init__(self, record, script=False):
        super().__init__(record.exception.message)
        self.record = record
        self.script = script


def parse_error_record(error):
    """A ParseError as PowerShell reports it: where, the line, a marker under the place, the message."""
    text = "At line:%d char:%d\r\n+ %s\r\n+ %s~\r\n%s" % (error.line, error.column, error.source_line, " " * (error.column - 1),
                                                          error.message)
    return ErrorRecord(text, "System.Management.Automation.ParseException", "ParserError", error.error_id)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class ExitScript(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class HostKilled(Exception):
    """The host ended the process (WS-Man Signal terminate, shell deleted)."""


def runtime_error(message, error_id, category="InvalidOperation", type_name="System.Management.Automation.RuntimeException"):
    return PSError(ErrorRecord(message, type_name, category, error_id))


def binding_error(message, error_id, category="InvalidArgument"):
    return PSError(ErrorRecord(message, "System.Management.Automation.ParameterBindingException", category, error_id))


def not_recognized(name):
    return PSError(ErrorRecord("The term '%s' is not recognized as a name of a cmdlet, function, script file, or executable program.\r\n"
                               "Check the spelling of the name, or if a path was included, verify that the path is correct and try "
                               "again." % name, "System.Management.Automation.CommandNotFoundException", "ObjectNotFound",
                               "CommandNotFoundException"))


# ----- conversions -------------------------------------------------------------------------------------------------
PYTHON_TYPE_NAMES = ((float, "System.Double"), (str, "System.String"), (list, "System.Object[]"))


def type_name_of(value):
    """The .NET type name PowerShell would report (GetType().FullName, error messages); None for $null."""
    if is_null(value):
        return None
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32" if -2 ** 31 <= value < 2 ** 31 else "System.Int64"
    for python_type, name in PYTHON_TYPE_NAMES:
        if isinstance(value, python_type):
            return name
    if isinstance(value, PSHashtable):
        return "System.Collections.Specialized.OrderedDictionary" if value.ordered else "System.Collections.Hashtable"
    return getattr(value, "type_name", "System.Object")  # the interpreter's own value classes name their type


def to_string(value):
    if is_null(value):
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, list):
        return " ".join(to_string(v) for v in value)
    if isinstance(value, PSObject):
        return "@{%s}" % "; ".join("%s=%s" % (k, to_string(v)) for k, v in value.properties.items())
    if isinstance(value, ErrorRecord):
        return value.exception.message
    if isinstance(value, PSException):
        return "%s: %s" % (value.type_name, value.message)
    if isinstance(value, WarningRecord):
        return value.message
    if isinstance(value, TypeRef):
        return value.full_name
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, ScriptBlock):
        return value.text
    if isinstance(value, NoteProperty):
        return "%s %s=%s" % (type_name_of(value.Value) or "object", value.Name, to_string(value.Value))
    return type_name_of(value)


def truthy(value):
    if is_null(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        if not value:
            return False
        return truthy(value[0]) if len(value) == 1 else True
    return True


def to_number(value, target="System.Int32"):
    if is_null(value):
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                pass
    raise runtime_error('Cannot convert value "%s" to type "%s". Error: "Input string was not in a correct format."'
                        % (to_string(value), target), "InvalidCastFromStringToInteger", "InvalidArgument",
                        "System.Management.Automation.PSInvalidCastException")


def enumerate_value(value):
    """What a value puts into a pipeline: arrays are unrolled one level, AutomationNull is nothing."""
    if value is AUTOMATION_NULL:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def collapse(outputs):
    """A pipeline's outputs as one value: nothing is AutomationNull, one is itself, more are an array."""
    if not outputs:
        return AUTOMATION_NULL
    if len(outputs) == 1:
        return outputs[0]
    return list(outputs)


def plain(value):
    """A value as plain Python (dict, list, str, ...), for hosts and logs."""
    if is_null(value):
        return None
    if isinstance(value, PSObject):
        return {k: plain(v) for k, v in value.properties.items()}
    if isinstance(value, PSHashtable):
        return {to_string(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (str, bool, int, float)):
        return value
    return to_string(value)


def from_plain(value):
    """Plain Python (from a host, e.g. deserialized Exchange objects) as PowerShell values."""
    if isinstance(value, dict):
        return PSObject((k, from_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [from_plain(v) for v in value]
    return value


# ----- JSON (PowerShell 7: ConvertFrom-Json / ConvertTo-Json) -----------------------------------------------------------
def _json_object(pairs):
    seen = CIDict()
    for key, value in pairs:
        if key in seen:
            if seen.key_of(key) == key:
                raise ValueError("Duplicate key '%s'" % key)
            raise PSError(ErrorRecord("Cannot convert the JSON string because it contains keys with different casing. Please use the "
                                      "-AsHashTable switch instead. The key that was attempted to be added to the existing key '%s' was "
                                      "'%s'." % (seen.key_of(key), key), "System.InvalidOperationException", "InvalidOperation",
                                      "DuplicateKeysInJsonString,Microsoft.PowerShell.Commands.ConvertFromJsonCommand"))
        seen[key] = value
    return PSObject(seen.items())


def _reject_constant(name):
    raise ValueError("Unexpected character encountered while parsing value: %s" % name[0])


def convert_from_json(text):
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_constant=_reject_constant)
    except ValueError as exc:
        raise PSError(ErrorRecord("Conversion from JSON failed with error: %s" % exc, "System.ArgumentException", "NotSpecified",
                                  "System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand")) from None


def _json_value(value, depth, limit, truncated):
    if is_null(value):
        return None
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else to_string(value)
    if isinstance(value, EnumValue):
        return value.number
    if isinstance(value, list):
        if depth > limit:
            truncated.append(True)
            return to_string(value)
        return [_json_value(v, depth + 1, limit, truncated) for v in value]
    if isinstance(value, (PSObject, PSHashtable)):
        if depth > limit:
            truncated.append(True)
            return to_string(value)
        items = value.properties.items() if isinstance(value, PSObject) else value.items()
        return {to_string(k): _json_value(v, depth + 1, limit, truncated) for k, v in items}
    if isinstance(value, ErrorRecord):
        return _json_value(PSObject([("Exception", PSObject([("Message", value.exception.message)])),
                                     ("FullyQualifiedErrorId", value.error_id)]), depth, limit, truncated)
    return to_string(value)


def _escape_json_string(text):
    # Newtonsoft.Json's default escaping, which PowerShell 7's ConvertTo-Json uses: quote, backslash, control characters.
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ch in "\u0085\u2028\u2029":
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _dump(value, compress, indent=0):
    pad, inner = "  " * indent, "  " * (indent + 1)
    newline = "" if compress else "\r\n"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return _escape_json_string(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        parts = [_dump(v, compress, indent + 1) for v in value]
        if compress:
            return "[" + ",".join(parts) + "]"
        return "[" + newline + ("," + newline).join(inner + p for p in parts) + newline + pad + "]"
    if not value:
        return "{}"
    parts = [(_escape_json_string(k), _dump(v, compress, indent + 1)) for k, v in value.items()]
    if compress:
        return "{" + ",".join("%s:%s" % p for p in parts) + "}"
    return "{" + newline + ("," + newline).join("%s%s: %s" % (inner, k, v) for k, v in parts) + newline + pad + "}"


def convert_to_json(value, depth=2, compress=False):
    """(text, truncated)"""
    truncated = []
    return _dump(_json_value(value, 0, depth, truncated), compress), bool(truncated)


# ----- commands --------------------------------------------------------------------------------------------------------
COMMON_PARAMETERS = {"ErrorAction": ("ea",), "WarningAction": ("wa",), "WarningVariable": ("wv",), "ErrorVariable": ("ev",),
                     "Verbose": ("vb",), "Debug": ("db",)}
COMMON_SWITCHES = ("Verbose", "Debug")
COMMON_REFUSED = ("OutVariable", "OutBuffer", "PipelineVariable", "InformationAction", "InformationVariable", "ProgressAction")
_NO_VALUE = object()  # a parameter given without a value (-Name), or no $_ for a script block
ACTION_PREFERENCES = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend", "Break")


class Command:
    """A command the interpreter can run: its parameters (name -> "switch" | "value"), which bind by position, which
    takes pipeline input, and handler(context, bound CIDict, pipeline input list or None) -> outputs list."""

    def __init__(self, name, parameters, handler, positional=(), pipeline=None, type_name=None):
        self.name = name
        self.parameters = dict(parameters)
        self.handler = handler
        self.positional = tuple(positional)
        self.pipeline = pipeline
        self.type_name = type_name or "Microsoft.PowerShell.Commands.%sCommand" % name.replace("-", "")


class CommandContext:
    def __init__(self, interpreter, command, error_action, warning_action):
        self.interpreter = interpreter
        self.command = command
        self.error_action = error_action
        self.warning_action = warning_action
        self.warnings = []
        self.errors = []

    def write_error(self, record):
        """A non-terminating error: what -ErrorAction / $ErrorActionPreference say."""
        self.errors.append(record)
        self.interpreter.last_ok = False
        if self.error_action == "Stop":
            raise PSError(record)
        if self.error_action == "Continue":
            self.interpreter.report(record)

    def write_warning(self, message):
        record = WarningRecord(message)
        self.warnings.append(record)
        if self.warning_action == "Stop":
            raise PSError(ErrorRecord("The running command stopped because the preference variable \"WarningPreference\" or common "
                                      "parameter is set to Stop: %s" % message, "System.Management.Automation.ActionPreferenceStopException",
                                      "OperationStopped", "ActionPreferenceStop"))
        if self.warning_action == "Continue":
            self.interpreter.host.write_stdout("WARNING: %s\r\n" % message)


def _parameter_error(name, command):
    return binding_error("A parameter cannot be found that matches parameter name '%s'." % name,
                         "NamedParameterNotFound,%s" % command.type_name)


def resolve_parameter(command, given):
    """The canonical name of a parameter as PowerShell binds it: exact (any case), else a unique prefix."""
    names = list(command.parameters) + [n for n in COMMON_PARAMETERS if n not in command.parameters]
    lowered = given.lower()
    exact = [n for n in names if n.lower() == lowered]
    if exact:
        return exact[0]
    for common, aliases in COMMON_PARAMETERS.items():
        if lowered in aliases:
            return common
    if any(n.lower() == lowered for n in COMMON_REFUSED):
        raise runtime_error("The common parameter -%s is outside the PowerShell subset the ceops lab interprets." % given,
                            "ceopsLab.OutsideSubset", "NotImplemented")
    candidates = [n for n in names if n.lower().startswith(lowered)]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise binding_error("Parameter cannot be processed because the parameter name '%s' is ambiguous. Possible matches include: %s."
                            % (given, " ".join("-" + c for c in candidates)), "AmbiguousParameter,%s" % command.type_name)
    raise _parameter_error(given, command)


def _is_switch(command, name):
    return command.parameters.get(name) == "switch" or name in COMMON_SWITCHES


# ----- the interpreter -------------------------------------------------------------------------------------------------
TYPES = {
    "string": TypeRef("System.String", lambda v: isinstance(v, str)),
    "int": TypeRef("System.Int32", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "int32": TypeRef("System.Int32", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "long": TypeRef("System.Int64", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "int64": TypeRef("System.Int64", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "double": TypeRef("System.Double", lambda v: isinstance(v, float)),
    "bool": TypeRef("System.Boolean", lambda v: isinstance(v, bool)),
    "boolean": TypeRef("System.Boolean", lambda v: isinstance(v, bool)),
    "object": TypeRef("System.Object", lambda v: not is_null(v)),
    "array": TypeRef("System.Array", lambda v: isinstance(v, list)),
    "object[]": TypeRef("System.Object[]", lambda v: isinstance(v, list)),
    "string[]": TypeRef("System.String[]", lambda v: isinstance(v, list)),
    "hashtable": TypeRef("System.Collections.Hashtable", lambda v: isinstance(v, PSHashtable) and not v.ordered),
    "collections.hashtable": TypeRef("System.Collections.Hashtable", lambda v: isinstance(v, PSHashtable) and not v.ordered),
    "pscustomobject": TypeRef("System.Management.Automation.PSCustomObject", lambda v: isinstance(v, PSObject)),
    "management.automation.pscustomobject": TypeRef("System.Management.Automation.PSCustomObject", lambda v: isinstance(v, PSObject)),
    "console": TypeRef("System.Console"),
    "text.encoding": TypeRef("System.Text.Encoding", lambda v: isinstance(v, Encoding)),
    "exception": TypeRef("System.Exception", lambda v: isinstance(v, PSException)),
    "management.automation.errorrecord": TypeRef("System.Management.Automation.ErrorRecord", lambda v: isinstance(v, ErrorRecord)),
    "scriptblock": TypeRef("System.Management.Automation.ScriptBlock", lambda v: isinstance(v, ScriptBlock)),
}


def lookup_type(name):
    lowered = name.lower()
    if lowered.startswith("system."):
        lowered = lowered[len("system."):]
    found = TYPES.get(lowered)
    if found is None:
        raise runtime_error("Unable to find type [%s]." % name, "TypeNotFound")
    return found


class Interpreter:
    """Runs one script for a host, which provides: write_stdout(text), write_stderr(text) (both str, the host encodes
    them with output_encoding), read_line() -> str or None (stdin, decoded with input_encoding), attributes
    output_encoding / input_encoding, command(name) -> Command or None for its own commands, and check_alive()
    (raises HostKilled when the process was ended)."""

    def __init__(self, host):
        self.host = host
        if getattr(host, "console", None) is None:
            host.console = Console(host)
        self.scopes = [CIDict([("ErrorActionPreference", "Continue"), ("WarningPreference", "Continue"),
                               ("ProgressPreference", "Continue"), ("VerbosePreference", "SilentlyContinue"),
                               ("DebugPreference", "SilentlyContinue"), ("OFS", " "), ("PSEdition", "Core")])]
        self.try_depth = 0
        self.parse_error = None
        self.last_ok = True
        self.errors_reported = []
        self.builtins = {c.name.lower(): c for c in (
            Command("ConvertFrom-Json", {"InputObject": "value", "Depth": "value", "AsHashtable": "switch", "NoEnumerate": "switch"},
                    self._convert_from_json, positional=("InputObject",), pipeline="InputObject"),
            Command("ConvertTo-Json", {"InputObject": "value", "Depth": "value", "Compress": "switch", "EnumsAsStrings": "switch",
                                       "AsArray": "switch", "EscapeHandling": "value"},
                    self._convert_to_json, positional=("InputObject",), pipeline="InputObject"),
            Command("ForEach-Object", {"Process": "value", "InputObject": "value", "Begin": "value", "End": "value",
                                       "MemberName": "value", "ArgumentList": "value", "Parallel": "value"},
                    self._foreach_object, positional=("Process",), pipeline="InputObject"),
            Command("Write-Output", {"InputObject": "value", "NoEnumerate": "switch"}, self._write_output, positional=("InputObject",),
                    pipeline="InputObject"),
            Command("Write-Warning", {"Message": "value"}, self._write_warning, positional=("Message",), pipeline="Message"),
            Command("Write-Error", {"Message": "value", "Category": "value", "ErrorId": "value"}, self._write_error,
                    positional=("Message",), pipeline="Message"),
            Command("Invoke-Expression", {"Command": "value"}, self._invoke_expression, positional=("Command",), pipeline="Command"),
        )}

    # -- running
    def run(self, source):
        """Parse and run a script; returns the exit code. Output and errors go to the host."""
        try:
            statements = parse(source)
        except ParseError as exc:
            self.parse_error = exc
            self.report(parse_error_record(exc))
            return 1
        try:
            self.exec_block(statements, _ConsoleSink(self))
        except ExitScript as exc:
            return exc.code
        except PSError as exc:
            self.report(exc.record)
            return 1
        except (_Break, _Continue):
            return 0 if self.last_ok else 1
        return 0 if self.last_ok else 1

    def report(self, record):
        self.errors_reported.append(record)
        self.host.write_stderr(clixml_error(record))

    # -- variables
    def get_var(self, name):
        lowered = name.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        if lowered == "null":
            return None
        if lowered == "psitem":
            name = "_"
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def set_var(self, name, value):
        if name.lower() in ("true", "false", "null"):
            raise runtime_error("Cannot overwrite variable %s because it is read-only or constant." % name, "VariableNotWritable",
                                "WriteError", "System.Management.Automation.SessionStateUnauthorizedAccessException")
        self.scopes[-1][name] = value

    def preference(self, name):
        value = to_string(self.get_var(name)) or "Continue"
        match = next((p for p in ACTION_PREFERENCES if p.lower() == value.lower()), None)
        if match is None or match in ("Inquire", "Suspend", "Break"):
            raise runtime_error('Cannot convert value "%s" to type "System.Management.Automation.ActionPreference".' % value,
                                "InvalidActionPreference", "InvalidArgument")
        return match

    # -- statements
    def exec_block(self, statements, sink):
        for statement in statements:
            self.host.check_alive()
            try:
                self.exec_statement(statement, sink)
            except PSError as exc:
                if exc.script or self.try_depth or self.preference("ErrorActionPreference") == "Stop":
                    raise
                self.report(exc.record)
                self.last_ok = False

    def exec_statement(self, node, sink):
        kind = node.kind
        if kind == "pipeline_stmt":
            self.last_ok = True
            for value in self.run_pipeline(node.pipeline):
                sink.append(value)
        elif kind == "assign":
            self.last_ok = True
            self.assign(node.target, self.pipeline_value(node.value))
        elif kind == "if":
            for condition, block in node.clauses:
                if truthy(self.pipeline_value(condition)):
                    self.exec_block(block, sink)
                    return
            if node.otherwise is not None:
                self.exec_block(node.otherwise, sink)
        elif kind == "foreach":
            for item in enumerate_value(self.pipeline_value(node.source)):
                self.set_var(node.variable, item)
                try:
                    self.exec_block(node.body, sink)
                except _Continue:
                    continue
                except _Break:
                    break
        elif kind == "while":
            while truthy(self.pipeline_value(node.condition)):
                try:
                    self.exec_block(node.body, sink)
                except _Continue:
                    continue
                except _Break:
                    break
        elif kind == "try":
            self.exec_try(node, sink)
        elif kind == "throw":
            self.exec_throw(node)
        elif kind == "break":
            raise _Break()
        elif kind == "continue":
            raise _Continue()
        elif kind == "exit":
            value = self.pipeline_value(node.value) if node.value is not None else 0
            raise ExitScript(int(to_number(value)))
        else:  # pragma: no cover - the parser makes no other kinds
            raise AssertionError(kind)

    def exec_try(self, node, sink):
        try:
            self.try_depth += 1
            try:
                self.exec_block(node.body, sink)
            finally:
                self.try_depth -= 1
        except PSError as exc:
            if node.catch is None:
                raise
            self.set_var("_", exc.record)
            self.exec_block(node.catch, sink)
        finally:
            if node.final is not None:
                self.exec_block(node.final, sink)

    def exec_throw(self, node):
        value = self.pipeline_value(node.value) if node.value is not None else None
        if isinstance(value, ErrorRecord):
            raise PSError(value, script=True)
        message = to_string(value) if not is_null(value) else "ScriptHalted"
        raise PSError(ErrorRecord(message, "System.Management.Automation.RuntimeException", "OperationStopped", message), script=True)

    def assign(self, target, value):
        if target.kind == "var":
            self.set_var(target.name, value)
        elif target.kind == "member":
            owner = self.evaluate(target.target)
            set_member(owner, target.name, value, self.host, static=target.static)
        elif target.kind == "index":
            owner = self.evaluate(target.target)
            set_index(owner, self.evaluate(target.index), value)
        else:  # pragma: no cover - the parser refuses other targets
            raise AssertionError(target.kind)

    # -- pipelines
    def pipeline_value(self, pipeline):
        """A pipeline as a value: a lone expression as itself, commands' outputs collapsed."""
        if len(pipeline.elements) == 1 and pipeline.elements[0].kind != "command":
            return self.evaluate(pipeline.elements[0])
        return collapse(self.run_pipeline(pipeline))

    def run_pipeline(self, pipeline):
        items = None
        for index, element in enumerate(pipeline.elements):
            if element.kind == "command":
                items = self.run_command(element, items if index else None)
            else:
                items = enumerate_value(self.evaluate(element))
        return items

    def resolve_command(self, node):
        target = self.evaluate(node.name)
        if isinstance(target, ScriptBlock):
            return target
        name = to_string(target)
        command = self.builtins.get(name.lower()) or self.host.command(name)
        if command is None:
            raise not_recognized(name)
        return command

    def run_command(self, node, pipeline_input):
        command = self.resolve_command(node)
        arguments = []
        for element in node.elements:
            if element[0] == "param":
                arguments.append(("param", element[1], self.evaluate(element[2]) if element[2] is not None else _NO_VALUE))
            elif element[0] == "splat":
                arguments.append(("splat", element[1], self.get_var(element[1])))
            else:
                arguments.append(("arg", None, self.evaluate(element[1])))
        if isinstance(command, ScriptBlock):
            return self.invoke_scriptblock(command, arguments, pipeline_input)
        bound, common = self.bind(command, arguments)
        error_action = common.get("ErrorAction") or self.preference("ErrorActionPreference")
        warning_action = common.get("WarningAction") or self.preference("WarningPreference")
        context = CommandContext(self, command, error_action, warning_action)
        try:
            outputs = command.handler(context, bound, pipeline_input)
        finally:
            if common.get("WarningVariable"):
                self._collect_variable(common["WarningVariable"], context.warnings)
            if common.get("ErrorVariable"):
                self._collect_variable(common["ErrorVariable"], context.errors)
        return list(outputs or [])

    def _collect_variable(self, name, records):
        name = to_string(name)
        if name.startswith("+"):
            existing = self.get_var(name[1:])
            self.set_var(name[1:], enumerate_value(existing) + list(records) if not is_null(existing) else list(records))
        else:
            self.set_var(name, list(records))

    def bind(self, command, arguments):
        bound, common, positional = CIDict(), {}, []

        def put(name, value):
            if name in COMMON_PARAMETERS:
                if name in ("ErrorAction", "WarningAction"):
                    text = to_string(value)
                    match = next((p for p in ACTION_PREFERENCES if p.lower() == text.lower()), None)
                    if match is None:
                        raise binding_error("Cannot bind parameter '%s'. Cannot convert value \"%s\" to type "
                                            "\"System.Management.Automation.ActionPreference\"." % (name, text),
                                            "CannotConvertArgumentNoMessage,%s" % command.type_name)
                    if match in ("Inquire", "Suspend", "Break"):
                        raise runtime_error("-%s %s is outside the PowerShell subset the ceops lab interprets." % (name, match),
                                            "ceopsLab.OutsideSubset", "NotImplemented")
                    value = match
                common[name] = value
                return
            if name in bound:
                raise binding_error("Cannot bind parameter because parameter '%s' is specified more than once. To provide multiple "
                                    "values to parameters that can accept multiple values, use the array syntax. For example, "
                                    "\"-parameter value1,value2,value3\"." % name, "ParameterAlreadyBound,%s" % command.type_name)
            bound[name] = value

        index = 0
        while index < len(arguments):
            kind, name, value = arguments[index]
            index += 1
            if kind == "param":
                canonical = resolve_parameter(command, name)
                if value is _NO_VALUE:
                    if _is_switch(command, canonical):
                        value = True
                    elif index < len(arguments) and arguments[index][0] == "arg":
                        value = arguments[index][2]
                        index += 1
                    else:
                        raise binding_error("Missing an argument for parameter '%s'. Specify a parameter of type 'System.Object' and try "
                                            "again." % canonical, "MissingArgument,%s" % command.type_name)
                put(canonical, value)
            elif kind == "splat":
                if isinstance(value, (PSHashtable, CIDict)):
                    for key, item in value.items():
                        put(resolve_parameter(command, to_string(key)), item)
                elif isinstance(value, list):
                    positional.extend(value)
                elif is_null(value):
                    continue
                else:
                    positional.append(value)
            else:
                positional.append(value)
        slots = [p for p in command.positional if p not in bound]
        for value in positional:
            if not slots:
                raise binding_error("A positional parameter cannot be found that accepts argument '%s'." % to_string(value),
                                    "PositionalParameterNotFound,%s" % command.type_name)
            put(slots.pop(0), value)
        return bound, common

    def invoke_scriptblock(self, block, arguments, pipeline_input, dollar_under=_NO_VALUE):
        if any(kind != "arg" for kind, _, _ in arguments):
            raise runtime_error("Parameters of a script block (param()) are outside the PowerShell subset the ceops lab interprets.",
                                "ceopsLab.OutsideSubset", "NotImplemented")
        scope = CIDict([("args", [value for _, _, value in arguments])])
        if pipeline_input is not None:
            scope["input"] = list(pipeline_input)
        if dollar_under is not _NO_VALUE:
            scope["_"] = dollar_under
        self.scopes.append(scope)
        sink = []
        try:
            self.exec_block(block.statements, sink)
        except ExitScript:
            raise
        finally:
            self.scopes.pop()
        return sink

    # -- expressions
    def evaluate(self, node):
        kind = node.kind
        if kind == "const":
            return node.value
        if kind == "var":
            return self.get_var(node.name)
        if kind == "expandable":
            return "".join(part if isinstance(part, str) else to_string(self.evaluate(part)) for part in node.parts)
        if kind == "subexpr":
            sink = []
            self.exec_block(node.statements, sink)
            return collapse(sink)
        if kind == "arrayexpr":
            sink = []
            self.exec_block(node.statements, sink)
            return [item for item in sink]
        if kind == "paren":
            return self.pipeline_value(node.pipeline)
        if kind == "hash":
            table = PSHashtable(ordered=node.ordered)
            for key_node, value_pipeline in node.pairs:
                key = self.evaluate(key_node)
                if key in table:
                    raise runtime_error("Duplicate keys '%s' are not allowed in hash literals." % to_string(key), "DuplicateKeyInHashLiteral",
                                        "ParserError")
                table[key] = self.pipeline_value(value_pipeline)
            return table
        if kind == "scriptblock":
            return ScriptBlock(node.statements, node.text)
        if kind == "type":
            return lookup_type(node.name)
        if kind == "cast":
            return cast(node.type_name, self.evaluate(node.operand))
        if kind == "array":
            return [self.evaluate(item) for item in node.items]
        if kind == "not":
            return not truthy(self.evaluate(node.operand))
        if kind == "binary":
            return self.binary(node)
        if kind == "member":
            return get_member(self.evaluate(node.target), node.name, static=node.static, host=self.host)
        if kind == "call":
            target = self.evaluate(node.target)
            return call_method(target, node.name, [self.evaluate(a) for a in node.arguments], self.host, static=node.static)
        if kind == "index":
            return get_index(self.evaluate(node.target), self.evaluate(node.index))
        if kind == "command":  # pragma: no cover - commands are pipeline elements
            raise AssertionError("command in expression")
        raise AssertionError(kind)  # pragma: no cover

    def binary(self, node):
        op = node.op
        if op == "and":
            return truthy(self.evaluate(node.left)) and truthy(self.evaluate(node.right))
        if op == "or":
            return truthy(self.evaluate(node.left)) or truthy(self.evaluate(node.right))
        left, right = self.evaluate(node.left), self.evaluate(node.right)
        return binary_operator(op, left, right)

    # -- built-in commands
    def _convert_from_json(self, context, bound, pipeline_input):
        if bound.get("AsHashtable") or bound.get("Depth") is not None:
            raise runtime_error("ConvertFrom-Json -AsHashtable / -Depth are outside the PowerShell subset the ceops lab interprets.",
                                "ceopsLab.OutsideSubset", "NotImplemented")
        pieces = list(pipeline_input) if pipeline_input is not None else enumerate_value(bound.get("InputObject"))
        text = "\n".join(to_string(p) for p in pieces)
        if not text.strip():
            return []
        value = convert_from_json(text)
        if isinstance(value, list) and not bound.get("NoEnumerate"):
            return value
        return [value]

    def _convert_to_json(self, context, bound, pipeline_input):
        for name in ("EnumsAsStrings", "AsArray", "EscapeHandling"):
            if name in bound:
                raise runtime_error("ConvertTo-Json -%s is outside the PowerShell subset the ceops lab interprets." % name,
                                    "ceopsLab.OutsideSubset", "NotImplemented")
        depth = int(to_number(bound.get("Depth", 2)))
        if pipeline_input is not None:
            value = pipeline_input[0] if len(pipeline_input) == 1 else list(pipeline_input)
        else:
            value = bound.get("InputObject")
        text, truncated = convert_to_json(value, depth=depth, compress=bool(bound.get("Compress")))
        if truncated:
            context.write_warning("Resulting JSON is truncated as serialization has exceeded the set depth of %d." % depth)
        return [text]

    def _foreach_object(self, context, bound, pipeline_input):
        for name in ("Begin", "End", "MemberName", "ArgumentList", "Parallel"):
            if name in bound:
                raise runtime_error("ForEach-Object -%s is outside the PowerShell subset the ceops lab interprets." % name,
                                    "ceopsLab.OutsideSubset", "NotImplemented")
        block = bound.get("Process")
        if not isinstance(block, ScriptBlock):
            raise binding_error("Cannot bind parameter 'Process'. Cannot convert the \"%s\" value of type \"%s\" to type "
                                "\"System.Management.Automation.ScriptBlock\"." % (to_string(block), type_name_of(block)),
                                "CannotConvertArgumentNoMessage,%s" % context.command.type_name)
        items = pipeline_input if pipeline_input is not None else [bound.get("InputObject")]
        outputs = []
        for item in items:
            # ForEach-Object runs its block in the caller's scope, with $_ set to the item.
            self.set_var("_", item)
            try:
                sink = []
                self.exec_block(block.statements, sink)
                outputs.extend(sink)
            except _Continue:
                continue
        return outputs

    def _write_output(self, context, bound, pipeline_input):
        if pipeline_input is not None:
            return list(pipeline_input)
        value = bound.get("InputObject")
        return [value] if bound.get("NoEnumerate") else enumerate_value(value)

    def _write_warning(self, context, bound, pipeline_input):
        for message in pipeline_input if pipeline_input is not None else [bound.get("Message")]:
            context.write_warning(to_string(message))
        return []

    def _write_error(self, context, bound, pipeline_input):
        for message in pipeline_input if pipeline_input is not None else [bound.get("Message")]:
            category = to_string(bound.get("Category")) or "NotSpecified"
            context.write_error(ErrorRecord(to_string(message), "Microsoft.PowerShell.Commands.WriteErrorException", category,
                                            to_string(bound.get("ErrorId")) or "Microsoft.PowerShell.Commands.WriteErrorException"))
        return []

    def _invoke_expression(self, context, bound, pipeline_input):
        outputs = []
        for text in pipeline_input if pipeline_input is not None else [bound.get("Command")]:
            try:
                statements = parse(to_string(text))
            except ParseError as exc:
                raise PSError(parse_error_record(exc)) from None
            sink = []
            self.exec_block(statements, sink)
            outputs.extend(sink)
        return outputs


class _ConsoleSink:
    """Top-level output: written to stdout as it is produced (Out-Default), each object as its string form."""

    def __init__(self, interpreter):
        self.interpreter = interpreter

    def append(self, value):
        if is_null(value):
            return
        self.interpreter.host.write_stdout(to_string(value) + "\r\n")


# ----- operators, members, casts --------------------------------------------------------------------------------------
def _scalar_equal(left, right):
    if is_null(left):
        return is_null(right)
    if is_null(right):
        return False
    if isinstance(left, str):
        return left.lower() == to_string(right).lower()
    if isinstance(left, bool):
        return left == truthy(right)
    if isinstance(left, (int, float)):
        try:
            return left == to_number(right)
        except PSError:
            return False
    return left is right


def _compare(left, right):
    if isinstance(left, str):
        a, b = left.lower(), to_string(right).lower()
    else:
        a, b = to_number(left), to_number(right)
    return (a > b) - (a < b)


def _like(value, pattern):
    return fnmatch.fnmatchcase(to_string(value).lower(), to_string(pattern).lower())


def binary_operator(op, left, right):
    left_list = isinstance(left, list)
    if op in ("eq", "ne", "gt", "ge", "lt", "le", "like", "notlike"):
        def test(item):
            if op == "eq":
                return _scalar_equal(item, right)
            if op == "ne":
                return not _scalar_equal(item, right)
            if op == "like":
                return _like(item, right)
            if op == "notlike":
                return not _like(item, right)
            order = _compare(item, right)
            return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0}[op]
        if left_list:
            return [item for item in left if test(item)]
        return test(left)
    if op in ("contains", "notcontains"):
        found = any(_scalar_equal(item, right) for item in (left if left_list else [left]))
        return found if op == "contains" else not found
    if op in ("in", "notin"):
        found = any(_scalar_equal(item, left) for item in (right if isinstance(right, list) else [right]))
        return found if op == "in" else not found
    if op in ("is", "isnot"):
        if not isinstance(right, TypeRef):
            raise runtime_error("The right operand of '-%s' must be a type." % op, "IsOperatorRequiresType", "InvalidArgument")
        matches = right.check(left) if right.check else False
        return matches if op == "is" else not matches
    if op == "+":
        if is_null(left):
            return right
        if left_list:
            return left + (right if isinstance(right, list) else [right])
        if isinstance(left, str):
            return left + to_string(right)
        if isinstance(left, (int, float)) and not isinstance(left, bool):
            return left + to_number(right)
        if isinstance(left, PSHashtable) and isinstance(right, PSHashtable):
            merged = PSHashtable(left.items(), ordered=left.ordered)
            for key, value in right.items():
                if key in merged:
                    raise runtime_error("Item has already been added. Key in dictionary: '%s'  Key being added: '%s'" % (key, key),
                                        "System.ArgumentException", "NotSpecified", "System.ArgumentException")
                merged[key] = value
            return merged
        raise runtime_error("Method invocation failed because [%s] does not contain a method named 'op_Addition'." % type_name_of(left),
                            "MethodNotFound")
    raise AssertionError(op)  # pragma: no cover


def cast(type_name, value):
    lowered = type_name.lower()
    if lowered.startswith("system."):
        lowered = lowered[len("system."):]
    if lowered == "string":
        return to_string(value) if not is_null(value) else ""
    if lowered in ("int", "int32", "long", "int64"):
        number = to_number(value, lookup_type(type_name).full_name)
        return int(round(number)) if isinstance(number, float) else int(number)
    if lowered == "double":
        return float(to_number(value, "System.Double"))
    if lowered in ("bool", "boolean"):
        return truthy(value)
    if lowered in ("array", "object[]"):
        return enumerate_value(value) if not is_null(value) else []
    if lowered == "string[]":
        return [to_string(v) for v in enumerate_value(value)] if not is_null(value) else []
    if lowered in ("pscustomobject", "management.automation.pscustomobject"):
        if isinstance(value, PSHashtable):
            return PSObject(value.items())
        return value
    if lowered in ("hashtable", "collections.hashtable"):
        if isinstance(value, PSHashtable):
            return PSHashtable(value.items())
        raise runtime_error('Cannot convert the "%s" value of type "%s" to type "System.Collections.Hashtable".'
                            % (to_string(value), type_name_of(value)), "ConvertToFinalInvalidCastException", "InvalidArgument",
                            "System.Management.Automation.PSInvalidCastException")
    if lowered == "object":
        return value
    lookup_type(type_name)  # raises for unknown types
    raise runtime_error("A cast to [%s] is outside the PowerShell subset the ceops lab interprets." % type_name, "ceopsLab.OutsideSubset",
                        "NotImplemented")


def _method_not_found(target, name):
    return runtime_error("Method invocation failed because [%s] does not contain a method named '%s'." % (type_name_of(target), name),
                         "MethodNotFound")


def _arity(name, arguments, allowed):
    if len(arguments) not in allowed:
        raise PSError(ErrorRecord('Cannot find an overload for "%s" and the argument count: "%d".' % (name, len(arguments)),
                                  "System.Management.Automation.MethodException", "NotSpecified", "MethodCountCouldNotFindBest"))


def get_member(target, name, static=False, host=None):
    lowered = name.lower()
    if static:
        if target.full_name == "System.Console":
            console = host.console
            if lowered in ("out", "error", "in"):
                return getattr(console, lowered if lowered != "in" else "input")
            if lowered == "outputencoding":
                return host.output_encoding
            if lowered == "inputencoding":
                return host.input_encoding
        if target.full_name == "System.Text.Encoding" and lowered in ENCODINGS:
            return ENCODINGS[lowered]
        if target.full_name == "System.String" and lowered == "empty":
            return ""
        raise runtime_error("The static member '%s' of [%s] is outside the PowerShell subset the ceops lab interprets."
                            % (name, target.full_name), "ceopsLab.OutsideSubset", "NotImplemented")
    if is_null(target):
        return None
    if lowered == "psobject" and not isinstance(target, _PSObjectView):
        return _PSObjectView(target)
    if isinstance(target, PSObject):
        return target.properties.get(name)
    if isinstance(target, PSHashtable):
        if name in target:
            return target[name]
        if lowered == "count":
            return len(target)
        if lowered == "keys":
            return target.keys()
        if lowered == "values":
            return target.values()
        return None
    if isinstance(target, list):
        if lowered in ("count", "length"):
            return len(target)
        found = [v for v in (get_member(item, name, host=host) for item in target) if not is_null(v)]
        return collapse(found) if found else None
    if isinstance(target, str):
        return len(target) if lowered == "length" else None
    if lowered == "count" and not isinstance(target, (ErrorRecord, PSException, _PSObjectView)):
        return 1
    members = _MEMBERS.get(type(target))
    if members and lowered in members:
        return members[lowered](target)
    return None


class _PSObjectView:
    """.PSObject of a value: its properties as PowerShell adapts them (a custom object's note properties; the .NET
    properties of strings, arrays and hashtables; none for numbers and booleans)."""

    type_name = "System.Management.Automation.PSObject"

    def __init__(self, target):
        self.target = target

    def properties(self):
        target = self.target
        if isinstance(target, PSObject):
            return [NoteProperty(k, v) for k, v in target.properties.items()]
        if isinstance(target, str):
            return [NoteProperty("Length", len(target))]
        if isinstance(target, list):
            return [NoteProperty(n, v) for n, v in (("Length", len(target)), ("LongLength", len(target)), ("Rank", 1), ("SyncRoot", target),
                                                     ("IsReadOnly", False), ("IsFixedSize", True), ("IsSynchronized", False),
                                                     ("Count", len(target)))]
        if isinstance(target, PSHashtable):
            return [NoteProperty(n, v) for n, v in (("IsReadOnly", False), ("IsFixedSize", False), ("IsSynchronized", False),
                                                     ("Keys", target.keys()), ("Values", target.values()), ("SyncRoot", target),
                                                     ("Count", len(target)))]
        return []


class _CategoryInfo:
    type_name = "System.Management.Automation.ErrorCategoryInfo"

    def __init__(self, record):
        self.record = record


_MEMBERS = {
    _PSObjectView: {"properties": lambda v: v.properties(),
                    "typenames": lambda v: [type_name_of(v.target), "System.Object"]},
    NoteProperty: {"name": lambda v: v.Name, "value": lambda v: v.Value, "membertype": lambda v: "NoteProperty",
                   "typenameofvalue": lambda v: type_name_of(v.Value) or "System.Object"},
    ErrorRecord: {"exception": lambda v: v.exception, "categoryinfo": lambda v: _CategoryInfo(v),
                  "fullyqualifiederrorid": lambda v: v.error_id, "targetobject": lambda v: None},
    PSException: {"message": lambda v: v.message, "innerexception": lambda v: None},
    _CategoryInfo: {"category": lambda v: EnumValue("System.Management.Automation.ErrorCategory", v.record.category,
                                                    ERROR_CATEGORIES.index(v.record.category)),
                    "reason": lambda v: v.record.exception.type_name.rsplit(".", 1)[-1], "targetname": lambda v: "",
                    "activity": lambda v: v.record.activity},
    WarningRecord: {"message": lambda v: v.message},
    TypeRef: {"fullname": lambda v: v.full_name, "name": lambda v: v.name},
    Encoding: {"webname": lambda v: v.web_name, "bodyname": lambda v: v.web_name},
    EnumValue: {"value__": lambda v: v.number},
}


def set_member(target, name, value, host, static=False):
    if static:
        if target.full_name == "System.Console" and name.lower() in ("outputencoding", "inputencoding"):
            if not isinstance(value, Encoding):
                raise runtime_error('Exception setting "%s": "Cannot convert the "%s" value of type "%s" to type "System.Text.Encoding"."'
                                    % (name, to_string(value), type_name_of(value)), "ExceptionWhenSetting", "NotSpecified",
                                    "System.Management.Automation.SetValueInvocationException")
            setattr(host, "output_encoding" if name.lower() == "outputencoding" else "input_encoding", value)
            return
        raise runtime_error("Setting the static member '%s' of [%s] is outside the PowerShell subset the ceops lab interprets."
                            % (name, target.full_name), "ceopsLab.OutsideSubset", "NotImplemented")
    if is_null(target):
        raise runtime_error("The property '%s' cannot be found on this object. Verify that the property exists and can be set." % name,
                            "PropertyAssignmentException", "InvalidOperation")
    if isinstance(target, PSHashtable):
        target[name] = value
        return
    if isinstance(target, PSObject) and name in target.properties:
        target.properties[name] = value
        return
    raise runtime_error("The property '%s' cannot be found on this object. Verify that the property exists and can be set." % name,
                        "PropertyNotFound", "InvalidOperation")


def get_index(target, index):
    if is_null(target):
        raise runtime_error("Cannot index into a null array.", "NullArray")
    if isinstance(target, PSHashtable):
        return target.get(index)
    if isinstance(target, (list, str)):
        position = int(to_number(index))
        if -len(target) <= position < len(target):
            return target[position]
        return None
    if isinstance(target, PSObject):
        return target.properties.get(to_string(index))
    raise runtime_error("Unable to index into an object of type %s." % type_name_of(target), "CannotIndex")


def set_index(target, index, value):
    if isinstance(target, PSHashtable):
        target[index] = value
        return
    if isinstance(target, list):
        position = int(to_number(index))
        if not -len(target) <= position < len(target):
            raise runtime_error("Index was outside the bounds of the array.", "System.IndexOutOfRangeException", "OperationStopped",
                                "System.IndexOutOfRangeException")
        target[position] = value
        return
    if is_null(target):
        raise runtime_error("Cannot index into a null array.", "NullArray")
    raise runtime_error("Unable to index into an object of type %s." % type_name_of(target), "CannotIndex")


def call_method(target, name, arguments, host, static=False):
    lowered = name.lower()
    if static:
        full = target.full_name
        if full == "System.String" and lowered in ("isnullorempty", "isnullorwhitespace"):
            _arity(name, arguments, (1,))
            text = None if is_null(arguments[0]) else to_string(arguments[0])
            return text is None or (text == "" if lowered == "isnullorempty" else text.strip() == "")
        if full == "System.Console" and lowered in ("writeline", "write"):
            _arity(name, arguments, (0, 1) if lowered == "writeline" else (1,))
            return host.console.out.write(lowered, arguments)
        if full == "System.Console" and lowered == "readline":
            _arity(name, arguments, (0,))
            return host.console.input.read_line()
        raise runtime_error("The static method '%s' of [%s] is outside the PowerShell subset the ceops lab interprets." % (name, full),
                            "ceopsLab.OutsideSubset", "NotImplemented")
    if is_null(target):
        raise runtime_error("You cannot call a method on a null-valued expression.", "InvokeMethodOnNull")
    if lowered == "gettype" and not arguments:
        return TypeRef(type_name_of(target))
    if lowered == "tostring" and not arguments:
        return to_string(target)
    if isinstance(target, _ConsoleWriter) and lowered in ("writeline", "write", "flush"):
        _arity(name, arguments, {"writeline": (0, 1), "write": (1,), "flush": (0,)}[lowered])
        return target.write(lowered, arguments)
    if isinstance(target, _ConsoleReader) and lowered in ("readline", "readtoend"):
        _arity(name, arguments, (0,))
        return target.read_line() if lowered == "readline" else target.read_to_end()
    if isinstance(target, str):
        if lowered in ("trim", "tolower", "toupper", "tolowerinvariant", "toupperinvariant"):
            _arity(name, arguments, (0,))
            return {"trim": target.strip, "tolower": target.lower, "toupper": target.upper, "tolowerinvariant": target.lower,
                    "toupperinvariant": target.upper}[lowered]()
        if lowered in ("startswith", "contains", "endswith"):
            _arity(name, arguments, (1,))
            other = to_string(arguments[0])
            return {"startswith": target.startswith, "contains": target.__contains__, "endswith": target.endswith}[lowered](other)
    if isinstance(target, PSHashtable):
        if lowered in ("containskey", "contains"):
            _arity(name, arguments, (1,))
            return arguments[0] in target
        if lowered == "add":
            _arity(name, arguments, (2,))
            if arguments[0] in target:
                raise runtime_error('Exception calling "Add" with "2" argument(s): "Item has already been added. Key in dictionary: '
                                    '\'%s\'  Key being added: \'%s\'"' % (arguments[0], arguments[0]), "ArgumentException", "NotSpecified",
                                    "System.Management.Automation.MethodInvocationException")
            target[arguments[0]] = arguments[1]
            return None
        if lowered == "remove":
            _arity(name, arguments, (1,))
            if arguments[0] in target:
                del target[arguments[0]]
            return None
    raise _method_not_found(target, name)


# ----- the console of a host -------------------------------------------------------------------------------------------
class _ConsoleWriter:
    type_name = "System.IO.TextWriter"

    def __init__(self, host, stream):
        self.host, self.stream = host, stream

    def write(self, method, arguments):
        if method == "flush":
            return None
        text = "".join(to_string(a) for a in arguments)
        if method == "writeline":
            text += "\r\n"
        (self.host.write_stdout if self.stream == "out" else self.host.write_stderr)(text)
        return None


class _ConsoleReader:
    type_name = "System.IO.TextReader"

    def __init__(self, host):
        self.host = host

    def read_line(self):
        return self.host.read_line()

    def read_to_end(self):
        lines = []
        while True:
            line = self.host.read_line()
            if line is None:
                return "\n".join(lines)
            lines.append(line)


class Console:
    """[Console]'s streams for a host."""

    def __init__(self, host):
        self.out = _ConsoleWriter(host, "out")
        self.error = _ConsoleWriter(host, "err")
        self.input = _ConsoleReader(host)


# ----- stderr ------------------------------------------------------------------------------------------------------------
def clixml_error(record):
    """An error as PowerShell writes it to a redirected stderr: CLIXML of the error's lines."""
    reason = record.exception.type_name.rsplit(".", 1)[-1]
    lines = record.exception.message.split("\r\n") + [
        "    + CategoryInfo          : %s: (:) [], %s" % (record.category, reason),
        "    + FullyQualifiedErrorId : %s" % record.error_id]
    parts = ['<S S="Error">%s_x000D__x000A_</S>' % escape(line).replace("\t", "_x0009_") for line in lines]
    return '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">%s</Objs>' % "".join(parts)
