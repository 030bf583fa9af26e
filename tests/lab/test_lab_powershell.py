"""The lab's PowerShell-subset interpreter (ceops_lab/powershell.py) on its own: PowerShell's documented behaviour for
the constructs it knows, and a PowerShell-shaped refusal of everything else. The scripts here are written for these
tests; none is the collection's."""

import json
import re
from xml.sax.saxutils import unescape

import pytest
from ceops_lab import powershell as ps


class Host:
    """A host for the interpreter: stdout / stderr collected as text, stdin from a list of lines."""

    def __init__(self, stdin=(), commands=None):
        self.out, self.err = [], []
        self.lines = list(stdin)
        self.output_encoding = self.input_encoding = ps.OEM_ENCODING
        self.console = None
        self.commands = {c.name.lower(): c for c in (commands or [])}

    def write_stdout(self, text):
        self.out.append(text)

    def write_stderr(self, text):
        self.err.append(text)

    def read_line(self):
        return self.lines.pop(0) if self.lines else None

    def command(self, name):
        return self.commands.get(name.lower())

    def check_alive(self):
        pass


class Recorder:
    """A host command that records what it was bound with: Set-Thing -Name <string> [-Force] [-Count <int>]."""

    def __init__(self):
        self.calls = []

    def command(self):
        def handler(context, bound, pipeline_input):
            self.calls.append(dict(bound.items()))
            return []
        return ps.Command("Set-Thing", {"Name": "value", "Force": "switch", "Count": "value", "NameSuffix": "value"}, handler,
                          positional=("Name",))


def run(source, stdin=(), commands=None):
    """(exit code, stdout lines, stderr text) of a script."""
    host = Host(stdin, commands)
    code = ps.Interpreter(host).run(source)
    return code, "".join(host.out).split("\r\n")[:-1], "".join(host.err)


def errors(stderr):
    """The lines of the errors a script wrote to stderr (CLIXML)."""
    return [unescape(m).replace("_x000D__x000A_", "") for m in re.findall(r'<S S="Error">(.*?)</S>', stderr)]


# -- strings: what is data and what is code ---------------------------------------------------------
def test_single_quoted_strings_are_verbatim_and_quotes_double():
    # PowerShell's typographic single quotes are quotes too: ’’ is one ’ and a lone ’ ends the string.
    code, out, _ = run("'a''b $x $(Stop-Computer)'\n'x\u2019\u2019y\u2019")
    assert code == 0 and out == ["a'b $x $(Stop-Computer)", "x\u2019y"]


def test_an_unclosed_quote_is_a_parse_error_and_nothing_runs():
    code, out, err = run("'first'\n$x = 'a'; 'b\n")
    assert code == 1 and out == []
    assert "The string is missing the terminator: '." in errors(err)[3] and "ParserError" in err


def test_double_quoted_strings_expand_variables_once_and_never_reparse_their_values():
    code, out, _ = run('$evil = \'$(Write-Output pwned)\'\n"v=$evil n=$(1 + 2) ""q"" `$x tab`tend"')
    assert code == 0 and out == ['v=$(Write-Output pwned) n=3 "q" $x tab\tend']


def test_a_name_invoked_with_the_call_operator_is_a_name_not_a_script():
    code, out, err = run("$name = 'Write-Output hi; Write-Output pwned'\n& $name")
    assert code == 1 and out == []
    assert errors(err)[0] == "The term 'Write-Output hi; Write-Output pwned' is not recognized as a name of a cmdlet, function, script " \
                             "file, or executable program."


def test_invoke_expression_does_run_data_as_code():
    """Here so that the lab catches a script that evaluates what it receives, as a real host would run it."""
    code, out, _ = run("$data = 'x''; Write-Output pwned; ''' \nInvoke-Expression \"Write-Output '$data'\"")
    assert code == 0 and out == ["x", "pwned", ""]


# -- commands and binding ---------------------------------------------------------------------------
def test_named_positional_switch_and_splatted_parameters_bind_as_powershell_does():
    recorder = Recorder()
    code, _, err = run("Set-Thing first -Force\n$p = @{ name = 'second'; Force = $false; Count = 2 }\nSet-Thing @p\n"
                       "Set-Thing -Name:third -Coun 3 -Force:$true", commands=[recorder.command()])
    assert code == 0, err
    assert recorder.calls == [{"Name": "first", "Force": True}, {"Name": "second", "Force": False, "Count": 2},
                              {"Name": "third", "Count": 3, "Force": True}]


@pytest.mark.parametrize("call,message", [
    ("Set-Thing -Nmae x", "A parameter cannot be found that matches parameter name 'Nmae'."),
    ("Set-Thing -Nam x", "Parameter cannot be processed because the parameter name 'Nam' is ambiguous. Possible matches include: "
                         "-Name -NameSuffix."),
    ("Set-Thing -Name", "Missing an argument for parameter 'Name'. Specify a parameter of type 'System.Object' and try again."),
    ("Set-Thing a b", "A positional parameter cannot be found that accepts argument 'b'."),
    ("Set-Thing -Name a -Name b", "Cannot bind parameter because parameter 'Name' is specified more than once."),
])
def test_binding_errors_are_powershells(call, message):
    code, _, err = run(call, commands=[Recorder().command()])
    assert code == 1 and errors(err)[0].startswith(message) and "ParameterBindingException" in err


def test_unknown_commands_are_not_recognized():
    code, out, err = run("Remove-Item C:\\ -Recurse\n'next'")
    assert out == ["next"] and code == 0  # a statement-terminating error; the script goes on (ErrorActionPreference Continue)
    assert errors(err)[0].startswith("The term 'Remove-Item' is not recognized") and "CommandNotFoundException" in err


# -- errors ---------------------------------------------------------------------------------------
def test_try_catch_finally_and_the_error_record():
    code, out, _ = run("try { throw \"no $('way')\" } catch { $_.Exception.Message; [string]$_.CategoryInfo.Category;"
                       " $_.Exception.GetType().FullName; $_.FullyQualifiedErrorId } finally { 'finally' }\n'after'")
    assert code == 0 and out == ["no way", "OperationStopped", "System.Management.Automation.RuntimeException", "no way", "finally",
                                 "after"]


def test_non_terminating_errors_obey_error_action():
    script = ("try { Write-Error 'soft' ; 'went on' } catch { 'caught' }\n"
              "try { Write-Error 'hard' -ErrorAction Stop ; 'went on' } catch { 'caught ' + $_.Exception.Message }\n"
              "Write-Error 'quiet' -ErrorAction SilentlyContinue\n"
              "$ErrorActionPreference = 'Stop'\n"
              "try { Write-Error 'by preference' ; 'went on' } catch { 'caught ' + $_.Exception.Message }\n")
    code, out, err = run(script)
    assert out == ["went on", "caught hard", "caught by preference"]
    assert [e for e in errors(err) if not e.startswith("    +")] == ["soft"]


def test_an_uncaught_throw_ends_the_script_with_exit_code_1():
    code, out, err = run("'before'\nthrow 'stop here'\n'never'")
    assert (code, out) == (1, ["before"]) and errors(err)[0] == "stop here"


def test_exit_codes():
    assert run("exit 3")[0] == 3
    assert run("Write-Error 'last one failed'")[0] == 1
    assert run("Write-Error 'failed'\n'then fine'")[0] == 0


def test_the_category_of_an_error_is_an_enum_and_json_writes_its_number():
    code, out, _ = run("try { throw 'x' } catch { ConvertTo-Json -InputObject @{ c = $_.CategoryInfo.Category } -Compress;"
                       " ConvertTo-Json -InputObject @{ c = [string]$_.CategoryInfo.Category } -Compress }")
    assert out == ['{"c":14}', '{"c":"OperationStopped"}']


# -- values ---------------------------------------------------------------------------------------
def test_no_output_enumerates_to_nothing_but_null_is_one_item():
    code, out, _ = run("$none = Write-Output -InputObject @()\n@($none).Count\n@($null).Count\n$null -eq $none")
    assert out == ["0", "1", "True"]


def test_hashtables_are_case_insensitive_and_ordered_ones_keep_their_order():
    code, out, _ = run("$h = [ordered]@{ b = 1; a = 2 }\n$h.C = 3\n$h['B'] = 4\nConvertTo-Json -InputObject $h -Compress\n$h.Count")
    assert out == ['{"b":4,"a":2,"C":3}', "3"]


def test_operators():
    code, out, _ = run("@('a','b') -contains 'B'\n@('a','b') -notcontains 'c'\n'x' -in @('X')\n@(1,2,3) -eq 2\n"
                       "$null -ne 'x'\n5 -isnot [string]\n'5' -is [string]\n'abc' -like 'A*'\n-not $true -or !$false\n'a' + 1\n"
                       "(@(1) + 2).Count")
    assert out == ["True", "True", "True", "2", "True", "True", "True", "True", "True", "a1", "2"]


def test_loops():
    code, out, _ = run("foreach ($i in @(1,2,3,4)) { if ($i -eq 2) { continue }; if ($i -eq 4) { break }; $i }\n"
                       "$n = @('a','b')\nwhile ($n.Count -gt 0) { $n[0]; $n = @() }")
    assert out == ["1", "3", "a"]


# -- JSON -------------------------------------------------------------------------------------------
def test_convertfrom_json_gives_custom_objects_and_refuses_keys_that_differ_only_in_case():
    code, out, err = run("$o = '{\"Name\": \"x\", \"list\": [1, true, null], \"inner\": {\"k\": \"v\"}}' | ConvertFrom-Json\n"
                         "$o.name; $o.inner.K; $o.list.Count\nforeach ($p in $o.PSObject.Properties) { $p.Name }\n"
                         "$o.GetType().FullName\n"
                         "'{\"a\": 1, \"A\": 2}' | ConvertFrom-Json")
    assert out == ["x", "v", "3", "Name", "list", "inner", "System.Management.Automation.PSCustomObject"]
    assert errors(err)[0].startswith("Cannot convert the JSON string because it contains keys with different casing.")


def test_convertfrom_json_of_something_that_is_not_json():
    code, out, err = run("try { ConvertFrom-Json -InputObject '{cmdlet: x' } catch { $_.FullyQualifiedErrorId }")
    assert out == ["System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand"]


def test_convertto_json_escapes_as_powershell_7_and_truncates_at_depth():
    code, out, _ = run("ConvertTo-Json -InputObject @{ s = \"it's <b> & `\"q`\" `n \u00fc\" } -Compress\n"
                       "ConvertTo-Json -InputObject @{ a = @{ b = @{ c = 1 } } } -Compress -Depth 1 -WarningVariable w\n$w.Count\n"
                       "ConvertTo-Json -InputObject ([ordered]@{ a = 1; b = @(1, 2) })")
    assert out[0] == '{"s":"it\'s <b> & \\"q\\" \\n \u00fc"}'
    assert out[1] == "WARNING: Resulting JSON is truncated as serialization has exceeded the set depth of 1."
    assert json.loads(out[2]) == {"a": {"b": "System.Collections.Hashtable"}} and out[3] == "1"
    assert "\r\n".join(out[4:]) == '{\r\n  "a": 1,\r\n  "b": [\r\n    1,\r\n    2\r\n  ]\r\n}'


# -- the console ----------------------------------------------------------------------------------
def test_stdin_lines_then_null_at_its_end():
    code, out, _ = run("while ($true) { $line = [Console]::In.ReadLine(); if ($null -eq $line) { break }; "
                       "[Console]::Out.WriteLine('got ' + $line) }\n'end'", stdin=["one", "two"])
    assert out == ["got one", "got two", "end"]


# -- outside the subset -----------------------------------------------------------------------------
@pytest.mark.parametrize("source,words", [
    ("function f { 'x' }", "The 'function' keyword is outside the PowerShell subset"),
    ("$env:PATH", "The scope or drive qualifier 'env:' is outside the PowerShell subset"),
    ("'a' -replace 'a','b'", "The '-replace' operator is outside the PowerShell subset"),
    ("Write-Output x > out.txt", "Redirection is outside the PowerShell subset"),
    ("$x = @\"\nhere\n\"@", "A here-string is outside the PowerShell subset"),
    ("switch ($x) { 1 { 'one' } }", "The 'switch' keyword is outside the PowerShell subset"),
    ("try { 1 } catch [System.Exception] { 2 }", "A typed catch block is outside the PowerShell subset"),
    ("1 - 1", "Arithmetic with '-' is outside the PowerShell subset"),
])
def test_constructs_outside_the_subset_are_refused_before_anything_runs(source, words):
    code, out, err = run("'started'\n" + source)
    assert code == 1 and out == [] and "ParserError" in err
    assert any(words in line for line in errors(err)), errors(err)


@pytest.mark.parametrize("source,message", [
    ("'x'.Foo()", "Method invocation failed because [System.String] does not contain a method named 'Foo'."),
    ("[Foo.Bar]::Baz", "Unable to find type [Foo.Bar]."),
    ("[Console]::Beep()", "The static method 'Beep' of [System.Console] is outside the PowerShell subset the ceops lab interprets."),
    ("$null.Trim()", "You cannot call a method on a null-valued expression."),
])
def test_runtime_members_outside_the_subset_are_powershell_errors(source, message):
    code, out, err = run(source)
    assert code == 1 and errors(err)[0] == message
