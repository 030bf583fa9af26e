"""The parser of the lab's PowerShell-subset interpreter (powershell.py): script text to a tree of Nodes, or a
ParseError before anything runs, as PowerShell parses a whole script first. It knows PowerShell's two parsing modes
(expression and argument mode), its quoting rules (including the typographic quotes and dashes it also accepts) and
refuses every construct outside the subset by name ("The 'function' keyword is outside the PowerShell subset ...")."""

import re


class ParseError(Exception):
    def __init__(self, message, line, column, error_id, source_line=""):
        super().__init__(message)
        self.message, self.line, self.column, self.error_id, self.source_line = message, line, column, error_id, source_line


SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
DASHES = "-\u2013\u2014\u2015"  # PowerShell accepts en and em dashes for '-'
KEYWORDS_SUPPORTED = ("if", "foreach", "while", "try", "throw", "break", "continue", "exit")
KEYWORDS_REFUSED = ("function", "filter", "workflow", "switch", "do", "until", "for", "param", "begin", "process", "end", "trap", "data",
                    "class", "enum", "using", "return", "dynamicparam", "configuration", "inlinescript", "parallel", "sequence",
                    "elseif", "else", "catch", "finally", "in")
COMPARISON = ("eq", "ne", "gt", "ge", "lt", "le", "like", "notlike", "contains", "notcontains", "in", "notin", "is", "isnot")
OTHER_OPERATORS = ("match", "notmatch", "replace", "split", "join", "f", "band", "bor", "bxor", "bnot", "shl", "shr", "xor", "as",
                   "creplace", "csplit", "cmatch", "imatch", "ireplace", "isplit")
COMMAND_END = "\r\n;|)}"
BAREWORD_END = " \t\r\n;|(){}&,\"'" + "\u2018\u2019\u201a\u201b\u201c\u201d\u201e"
VARIABLE_CHARS = re.compile(r"[A-Za-z0-9_]")
END = "\x00"  # what the parser sees past the end of the script: in no set of characters it tests for


class Node:
    def __init__(self, kind, line, **fields):
        self.kind = kind
        self.line = line
        self.__dict__.update(fields)


class Parser:
    """Recursive descent over the source text; PowerShell's expression and argument modes are two entry points."""

    def __init__(self, source):
        self.src = source.replace("\r\n", "\n").replace("\r", "\n")
        self.pos = 0
        self.no_comma = 0

    # -- positions and errors
    def _line_col(self, pos=None):
        pos = self.pos if pos is None else pos
        line = self.src.count("\n", 0, pos) + 1
        start = self.src.rfind("\n", 0, pos) + 1
        return line, pos - start + 1

    def error(self, message, error_id="UnexpectedToken", pos=None):
        line, column = self._line_col(pos)
        text = self.src.split("\n")[line - 1] if self.src else ""
        return ParseError(message, line, column, error_id, text)

    def outside(self, what, pos=None):
        return self.error("%s is outside the PowerShell subset the ceops lab interprets (lab/ceops_lab/powershell.py)." % what,
                          "ceopsLab.OutsideSubset", pos)

    # -- characters
    def peek(self, offset=0):
        index = self.pos + offset
        return self.src[index] if index < len(self.src) else END

    def eof(self):
        return self.pos >= len(self.src)

    def skip(self, newlines=False):
        while not self.eof():
            ch = self.peek()
            if ch in " \t\f\v\u00a0":
                self.pos += 1
            elif ch == "`" and self.peek(1) == "\n":
                self.pos += 2
            elif ch == "#":
                while not self.eof() and self.peek() != "\n":
                    self.pos += 1
            elif ch == "<" and self.peek(1) == "#":
                end = self.src.find("#>", self.pos + 2)
                if end < 0:
                    raise self.error("Missing end of comment block ('#>').", "MissingEndOfComment")
                self.pos = end + 2
            elif newlines and ch == "\n":
                self.pos += 1
            else:
                break

    def skip_separators(self):
        """Whitespace, comments, line breaks and ';' between statements (or hash literal entries)."""
        self.skip(newlines=True)
        while self.peek() == ";":
            self.pos += 1
            self.skip(newlines=True)

    def word_at(self):
        """The run of identifier characters at pos (for keywords), lower-cased."""
        match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.src, self.pos)
        return match.group(0).lower() if match else ""

    def dash_operator(self):
        """(name, length) of a '-operator' at pos, or (None, 0)."""
        if self.peek() not in DASHES:
            return None, 0
        match = re.compile(r"[A-Za-z]+").match(self.src, self.pos + 1)
        if not match:
            return None, 0
        return match.group(0).lower(), 1 + len(match.group(0))

    def expect(self, text, message, error_id):
        if not self.src.startswith(text, self.pos):
            raise self.error(message, error_id)
        self.pos += len(text)

    # -- statements
    def parse_script(self):
        statements = self.parse_statements(None)
        if not self.eof():
            raise self.error("Unexpected token '%s' in expression or statement." % self.peek())
        return statements

    def parse_statements(self, terminator):
        statements = []
        while True:
            self.skip_separators()
            if self.eof() or (terminator and self.peek() == terminator):
                return statements
            if self.peek() in ")}" and self.peek() != terminator:
                raise self.error("Unexpected token '%s' in expression or statement." % self.peek())
            statements.append(self.parse_statement())
            self.skip()
            if not (self.eof() or self.peek() in "\n;" or (terminator and self.peek() == terminator)):
                raise self.error("Unexpected token '%s' in expression or statement." % self.src[self.pos:self.pos + 20].split("\n")[0])

    def parse_block(self, after):
        self.skip(newlines=True)
        if self.peek() != "{":
            raise self.error("Missing statement block after %s." % after, "MissingStatementBlock")
        self.pos += 1
        statements = self.parse_statements("}")
        self.expect("}", "Missing closing '}' in statement block or type definition.", "MissingEndCurlyBrace")
        return statements

    def parse_condition(self, keyword):
        self.skip()
        if self.peek() != "(":
            raise self.error("Missing '(' after '%s' in %s statement." % (keyword, keyword), "MissingOpenParenthesisInIfStatement")
        self.pos += 1
        self.skip(newlines=True)
        condition = self.parse_pipeline()
        self.skip(newlines=True)
        self.expect(")", "Missing closing ')' after expression in '%s' statement." % keyword, "MissingEndParenthesisAfterStatement")
        return condition

    def parse_statement(self):
        line, _ = self._line_col()
        word = self.word_at()
        following = self.src[self.pos + len(word):self.pos + len(word) + 1] if word else ""
        if word and (following == "" or not VARIABLE_CHARS.match(following) and following != "-"):
            if word in KEYWORDS_REFUSED:
                raise self.outside("The '%s' keyword" % word)
            if word in KEYWORDS_SUPPORTED:
                self.pos += len(word)
                return getattr(self, "parse_" + word)(line)
        if self.peek() in DASHES and self.peek(1) in DASHES:
            raise self.outside("The '--' operator")
        pipeline = self.parse_pipeline()
        self.skip()
        if self.peek() == "=" and self.peek(1) != "=":
            target = pipeline.elements[0] if len(pipeline.elements) == 1 else None
            if target is None or target.kind not in ("var", "member", "index"):
                raise self.error("The assignment expression is not valid. The input to an assignment operator must be an object that is "
                                 "able to accept assignments, such as a variable or a property.", "InvalidLeftHandSide")
            self.pos += 1
            self.skip(newlines=True)
            return Node("assign", line, target=target, value=self.parse_pipeline())
        if self.peek() in "+*/%" and self.peek(1) == "=" or (self.peek() in DASHES and self.peek(1) == "="):
            raise self.outside("The '%s=' operator" % self.peek())
        return Node("pipeline_stmt", line, pipeline=pipeline)

    def parse_if(self, line):
        clauses = [(self.parse_condition("if"), self.parse_block("if (...)"))]
        otherwise = None
        while True:
            saved = self.pos
            self.skip(newlines=True)
            word = self.word_at()
            if word == "elseif":
                self.pos += len(word)
                clauses.append((self.parse_condition("elseif"), self.parse_block("elseif (...)")))
            elif word == "else":
                self.pos += len(word)
                otherwise = self.parse_block("else")
                break
            else:
                self.pos = saved
                break
        return Node("if", line, clauses=clauses, otherwise=otherwise)

    def parse_foreach(self, line):
        self.skip()
        self.expect("(", "Missing opening '(' after keyword 'foreach'.", "MissingOpenParenthesisAfterKeyword")
        self.skip(newlines=True)
        if self.peek() != "$":
            raise self.error("Missing variable name after foreach.", "MissingVariableNameAfterForeach")
        self.pos += 1
        name = self.read_variable_name()
        self.skip(newlines=True)
        if self.word_at() != "in":
            raise self.error("Missing 'in' after variable in foreach loop.", "MissingInInForeach")
        self.pos += 2
        self.skip(newlines=True)
        source = self.parse_pipeline()
        self.skip(newlines=True)
        self.expect(")", "Missing closing ')' after expression in 'foreach' statement.", "MissingEndParenthesisAfterForeach")
        return Node("foreach", line, variable=name, source=source, body=self.parse_block("foreach (...)"))

    def parse_while(self, line):
        return Node("while", line, condition=self.parse_condition("while"), body=self.parse_block("while (...)"))

    def parse_try(self, line):
        body = self.parse_block("try")
        catch = final = None
        saved = self.pos
        self.skip(newlines=True)
        if self.word_at() == "catch":
            self.pos += 5
            self.skip()
            if self.peek() == "[":
                raise self.outside("A typed catch block")
            catch = self.parse_block("catch")
            saved = self.pos
            self.skip(newlines=True)
            if self.word_at() == "catch":
                raise self.outside("A second catch block")
        if self.word_at() == "finally":
            self.pos += 7
            final = self.parse_block("finally")
        else:
            self.pos = saved
        if catch is None and final is None:
            raise self.error("The Try statement is missing its Catch or Finally block.", "MissingCatchOrFinally")
        return Node("try", line, body=body, catch=catch, final=final)

    def _optional_pipeline(self):
        self.skip()
        if self.eof() or self.peek() in "\n;})":
            return None
        return self.parse_pipeline()

    def parse_throw(self, line):
        return Node("throw", line, value=self._optional_pipeline())

    def parse_exit(self, line):
        return Node("exit", line, value=self._optional_pipeline())

    def parse_break(self, line):
        self.skip()
        if not (self.eof() or self.peek() in "\n;})"):
            raise self.outside("A loop label")
        return Node("break", line)

    def parse_continue(self, line):
        self.skip()
        if not (self.eof() or self.peek() in "\n;})"):
            raise self.outside("A loop label")
        return Node("continue", line)

    # -- pipelines and commands
    def parse_pipeline(self):
        line, _ = self._line_col()
        elements = [self.parse_pipeline_element(first=True)]
        while True:
            self.skip()
            if self.peek() == "|" and self.peek(1) != "|":
                self.pos += 1
                self.skip(newlines=True)
                elements.append(self.parse_pipeline_element(first=False))
            elif self.peek() in "><" or (self.peek() in "12*" and self.peek(1) == ">"):
                raise self.outside("Redirection")
            elif self.src.startswith("&&", self.pos) or self.src.startswith("||", self.pos):
                raise self.outside("The pipeline chain operators && and ||")
            else:
                return Node("pipeline", line, elements=elements)

    def parse_pipeline_element(self, first):
        ch = self.peek()
        if ch == "&" and self.peek(1) != "&":
            return self.parse_command(invoke=True)
        if ch == "." and self.peek(1) in " \t$&'\"":
            raise self.outside("Dot-sourcing")
        if re.match(r"[A-Za-z_]", ch):
            return self.parse_command(invoke=False)
        if ch in "%?":
            raise self.outside("The alias '%s'" % ch)
        if not first:
            raise self.error("Expressions are only allowed as the first element of a pipeline.", "ExpressionsMustBeFirstInPipeline")
        if ch == END:
            raise self.error("An empty pipe element is not allowed.", "EmptyPipeElement")
        return self.parse_expression()

    def read_bareword(self):
        start = self.pos
        while not self.eof() and self.peek() not in BAREWORD_END:
            self.pos += 1
        return self.src[start:self.pos]

    def parse_command(self, invoke):
        line, _ = self._line_col()
        if invoke:
            self.pos += 1
            self.skip()
            name = self.parse_argument()
        else:
            start = self.pos
            word = self.read_bareword()
            if "$" in word or "[" in word:
                raise self.error("Unexpected token '%s' in expression or statement." % word, pos=start)
            name = Node("const", line, value=word)
        elements = []
        while True:
            self.skip()
            ch = self.peek()
            if self.eof() or ch in COMMAND_END:
                break
            if ch in "><":
                raise self.outside("Redirection")
            if ch == "&":
                raise self.outside("The background operator '&'")
            if ch in DASHES and re.match(r"[A-Za-z_?]", self.peek(1)):
                self.pos += 1
                match = re.compile(r"[A-Za-z0-9_?]+").match(self.src, self.pos)
                pname = match.group(0)
                self.pos = match.end()
                if self.peek() == ":":
                    self.pos += 1
                    self.skip()
                    elements.append(("param", pname, self.parse_argument_list()))
                else:
                    elements.append(("param", pname, None))
                continue
            if ch in DASHES and self.peek(1) in DASHES:
                raise self.outside("The '--' argument")
            if ch == "@" and re.match(r"[A-Za-z_]", self.peek(1)):
                self.pos += 1
                elements.append(("splat", self.read_variable_name()))
                continue
            elements.append(("arg", self.parse_argument_list()))
        return Node("command", line, name=name, invoke=invoke, elements=elements)

    def parse_argument_list(self):
        first = self.parse_argument()
        self.skip()
        if self.peek() != ",":
            return first
        items = [first]
        while self.peek() == ",":
            self.pos += 1
            self.skip(newlines=True)
            items.append(self.parse_argument())
            self.skip()
        return Node("array", first.line, items=items)

    def parse_argument(self):
        """One argument in argument mode: a bareword is a string, $x.y is member access, the rest as in expressions."""
        line, _ = self._line_col()
        ch = self.peek()
        if ch == "$" or ch in SINGLE_QUOTES or ch in DOUBLE_QUOTES or ch in "(@{":
            return self.parse_postfix(self.parse_primary())
        if ch == "[":
            raise self.outside("A '[' in argument mode")
        start = self.pos
        word = self.read_bareword()
        if not word:
            raise self.error("Unexpected token '%s' in expression or statement." % ch, pos=start)
        if re.match(r"^-?\d+(\.\d+)?$", word):
            return Node("const", line, value=float(word) if "." in word else int(word))
        if "$" in word:
            raise self.outside("Variable expansion inside a bareword argument", pos=start)
        return Node("const", line, value=word)

    # -- expressions, lowest precedence first
    def parse_expression(self):
        return self.parse_logical()

    def _operator(self, names):
        """Consume a '-operator' from names at pos (after optional whitespace); return its name or None."""
        saved = self.pos
        self.skip()
        name, length = self.dash_operator()
        if name in names:
            self.pos += length
            self.skip(newlines=True)
            return name
        if name in OTHER_OPERATORS or (name and name[0] in "ci" and name[1:] in COMPARISON + OTHER_OPERATORS):
            raise self.outside("The '-%s' operator" % name)
        self.pos = saved
        return None

    def _left_associative(self, operators, operand):
        left = operand()
        while True:
            operator = self._operator(operators)
            if operator is None:
                return left
            left = Node("binary", left.line, op=operator, left=left, right=operand())

    def parse_logical(self):
        return self._left_associative(("and", "or"), self.parse_comparison)

    def parse_comparison(self):
        return self._left_associative(COMPARISON, self.parse_additive)

    def parse_additive(self):
        left = self.parse_unary()
        while True:
            saved = self.pos
            self.skip()
            ch = self.peek()
            if ch == "+" and self.peek(1) not in "+=":
                self.pos += 1
                self.skip(newlines=True)
                left = Node("binary", left.line, op="+", left=left, right=self.parse_unary())
            elif ch in "*/%" and self.peek(1) != "=" or (ch in DASHES and self.peek(1) in " \t$(0123456789"):
                raise self.outside("Arithmetic with '%s'" % ch)
            else:
                self.pos = saved
                return left

    def parse_unary(self):
        self.skip()
        name, length = self.dash_operator()
        if name == "not":
            self.pos += length
            self.skip()
            return Node("not", self._line_col()[0], operand=self.parse_unary())
        if self.peek() == "!":
            self.pos += 1
            self.skip()
            return Node("not", self._line_col()[0], operand=self.parse_unary())
        if name in ("bnot", "split", "join"):
            raise self.outside("The unary '-%s' operator" % name)
        return self.parse_comma()

    def parse_comma(self):
        first = self.parse_cast()
        if self.no_comma:
            return first
        saved = self.pos
        self.skip()
        if self.peek() != ",":
            self.pos = saved
            return first
        items = [first]
        while self.peek() == ",":
            self.pos += 1
            self.skip(newlines=True)
            items.append(self.parse_cast())
            saved = self.pos
            self.skip()
        self.pos = saved
        return Node("array", first.line, items=items)

    def read_type_name(self):
        start = self.pos
        self.pos += 1
        match = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*(\[\])?)\s*\]").match(self.src, self.pos)
        if not match:
            raise self.outside("This type literal", pos=start)
        self.pos = match.end()
        return match.group(1)

    def parse_cast(self):
        self.skip()
        if self.peek() != "[":
            return self.parse_postfix(self.parse_primary())
        line, _ = self._line_col()
        start = self.pos
        type_name = self.read_type_name()
        if self.src.startswith("::", self.pos):
            return self.parse_postfix(Node("type", line, name=type_name))
        saved = self.pos
        self.skip()
        ch = self.peek()
        if type_name.lower() == "ordered":
            if not self.src.startswith("@{", self.pos):
                raise self.error("The ordered attribute can be specified only on a hash literal node.", "OrderedAttributeOnlyOnHashLiteralNode",
                                 pos=start)
            node = self.parse_primary()
            node.ordered = True
            return node
        if ch and (ch in "$(@[{" or ch in SINGLE_QUOTES or ch in DOUBLE_QUOTES or ch.isdigit()
                   or (ch in DASHES and self.peek(1).isdigit())):
            return Node("cast", line, type_name=type_name, operand=self.parse_cast())
        self.pos = saved
        return self.parse_postfix(Node("type", line, name=type_name))

    def parse_postfix(self, node):
        while True:
            ch = self.peek()
            if ch == "." and re.match(r"[A-Za-z_]", self.peek(1)):
                self.pos += 1
                node = self._member(node, static=False)
            elif self.src.startswith("::", self.pos):
                if node.kind != "type":
                    raise self.outside("'::' on something that is not a [Type]")
                self.pos += 2
                node = self._member(node, static=True)
            elif ch == "[":
                self.pos += 1
                self.skip(newlines=True)
                index = self.parse_expression()
                self.skip(newlines=True)
                self.expect("]", "Array index expression is missing or not valid.", "MissingArrayIndexExpression")
                node = Node("index", node.line, target=node, index=index)
            elif ch == "." and self.peek(1) in "$'\"(":
                raise self.outside("A dynamic member name")
            else:
                return node

    def _member(self, target, static):
        match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.src, self.pos)
        if not match:
            raise self.error("Missing property name after reference operator.", "MissingPropertyName")
        name = match.group(0)
        self.pos = match.end()
        if self.peek() == "(":
            self.pos += 1
            arguments = []
            self.skip(newlines=True)
            self.no_comma += 1
            try:
                while self.peek() != ")":
                    arguments.append(self.parse_expression())
                    self.skip(newlines=True)
                    if self.peek() == ",":
                        self.pos += 1
                        self.skip(newlines=True)
                    elif self.peek() != ")":
                        raise self.error("Missing ')' in method call.", "MissingEndParenthesisInMethodCall")
            finally:
                self.no_comma -= 1
            self.pos += 1
            return Node("call", target.line, target=target, name=name, arguments=arguments, static=static)
        return Node("member", target.line, target=target, name=name, static=static)

    def read_variable_name(self):
        match = re.compile(r"[A-Za-z0-9_]+").match(self.src, self.pos)
        if not match:
            raise self.outside("This variable syntax")
        self.pos = match.end()
        if self.peek() == ":" and re.match(r"[A-Za-z_]", self.peek(1)):
            raise self.outside("The scope or drive qualifier '%s:'" % match.group(0))
        return match.group(0)

    def _parenthesized_statements(self, kind, line):
        """After `$(` (kind "subexpr") or `@(` ("arrayexpr"): the statements up to the matching ')'."""
        statements = self.parse_statements(")")
        what, error_id = {"subexpr": ("subexpression", "MissingEndParenthesisInSubexpression"),
                          "arrayexpr": ("array subexpression", "MissingEndParenthesisInArraySubexpression")}[kind]
        self.expect(")", "Missing closing ')' in %s." % what, error_id)
        return Node(kind, line, statements=statements)

    def parse_primary(self):
        line, _ = self._line_col()
        ch = self.peek()
        if ch == "$":
            following = self.peek(1)
            if following == "(":
                self.pos += 2
                return self._parenthesized_statements("subexpr", line)
            if following == "{" or following in "?$^":
                raise self.outside("The variable syntax '$%s'" % following)
            self.pos += 1
            return Node("var", line, name=self.read_variable_name())
        if ch == "@":
            following = self.peek(1)
            if following == "(":
                self.pos += 2
                return self._parenthesized_statements("arrayexpr", line)
            if following == "{":
                self.pos += 2
                return self.parse_hash_literal(line)
            if following in SINGLE_QUOTES or following in DOUBLE_QUOTES:
                raise self.outside("A here-string")
            raise self.error("Unexpected token '@' in expression or statement.")
        if ch == "(":
            self.pos += 1
            self.skip(newlines=True)
            saved, self.no_comma = self.no_comma, 0
            try:
                inner = self.parse_statement()
            finally:
                self.no_comma = saved
            if inner.kind != "pipeline_stmt":
                raise self.outside("A statement other than a pipeline inside ( )")
            self.skip(newlines=True)
            self.expect(")", "Missing closing ')' in expression.", "MissingEndParenthesisInExpression")
            return Node("paren", line, pipeline=inner.pipeline)
        if ch == "{":
            start = self.pos
            self.pos += 1
            statements = self.parse_statements("}")
            self.expect("}", "Missing closing '}' in statement block or type definition.", "MissingEndCurlyBrace")
            return Node("scriptblock", line, statements=statements, text=self.src[start + 1:self.pos - 1])
        if ch and ch in SINGLE_QUOTES:
            return Node("const", line, value=self.read_single_quoted())
        if ch and ch in DOUBLE_QUOTES:
            return self.read_double_quoted(line)
        match = re.compile(r"-?\d+(\.\d+)?(?![A-Za-z0-9_])").match(self.src, self.pos) if ch.isdigit() or (
            ch in DASHES and self.peek(1).isdigit()) else None
        if match:
            self.pos = match.end()
            text = match.group(0).replace("\u2013", "-")
            return Node("const", line, value=float(text) if "." in text else int(text))
        if ch.isdigit():
            raise self.outside("This numeric literal")
        if ch == END:
            raise self.error("You must provide a value expression following the operator.", "ExpectedValueExpression")
        raise self.error("Unexpected token '%s' in expression or statement." % self.src[self.pos:self.pos + 20].split("\n")[0])

    def parse_hash_literal(self, line):
        pairs = []
        while True:
            self.skip_separators()
            if self.peek() == "}":
                self.pos += 1
                return Node("hash", line, pairs=pairs, ordered=False)
            if self.eof():
                raise self.error("Missing closing '}' in hash literal.", "MissingEndCurlyBrace")
            ch = self.peek()
            if ch in SINGLE_QUOTES or ch in DOUBLE_QUOTES or ch == "$" or ch == "(":
                key = self.parse_postfix(self.parse_primary())
            else:
                match = re.compile(r"[A-Za-z0-9_.\-]+").match(self.src, self.pos)
                if not match:
                    raise self.error("Missing key before '=' in hash literal.", "MissingEqualsInHashLiteral")
                self.pos = match.end()
                text = match.group(0)
                key = Node("const", line, value=int(text) if text.isdigit() else text)
            self.skip()
            self.expect("=", "Missing '=' operator after key in hash literal.", "MissingEqualsInHashLiteral")
            self.skip(newlines=True)
            statement = self.parse_statement()
            if statement.kind != "pipeline_stmt":
                raise self.outside("A statement other than a pipeline as a hash literal value")
            pairs.append((key, statement.pipeline))
            self.skip()
            if not (self.peek() in "\n;}"):
                raise self.error("Missing statement after '=' in hash literal.", "MissingStatementInHashLiteral")

    def _string_ends(self, quotes, out):
        """At one of `quotes`: True when it ends the string; a doubled quote is one quote character of it."""
        if self.peek(1) in quotes:
            out.append(self.peek(1))
            self.pos += 2
            return False
        self.pos += 1
        return True

    def read_single_quoted(self):
        self.pos += 1
        out = []
        while not self.eof():
            ch = self.peek()
            if ch in SINGLE_QUOTES:
                if self._string_ends(SINGLE_QUOTES, out):
                    return "".join(out)
                continue
            out.append(ch)
            self.pos += 1
        raise self.error("The string is missing the terminator: '.", "TerminatorExpectedAtEndOfString")

    ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}

    def read_double_quoted(self, line):
        self.pos += 1
        parts, text = [], []
        while not self.eof():
            ch = self.peek()
            if ch in DOUBLE_QUOTES:
                if not self._string_ends(DOUBLE_QUOTES, text):
                    continue
                if text:
                    parts.append("".join(text))
                return Node("expandable", line, parts=parts)
            if ch == "`":
                following = self.peek(1)
                if following == "u" and self.peek(2) == "{":
                    raise self.outside("The `u{} escape")
                text.append(self.ESCAPES.get(following, following))
                self.pos += 2
                continue
            if ch == "$" and self.peek(1) == "(":
                if text:
                    parts.append("".join(text))
                    text = []
                self.pos += 2
                parts.append(self._parenthesized_statements("subexpr", line))
                continue
            if ch == "$" and re.match(r"[A-Za-z_]", self.peek(1)):
                if text:
                    parts.append("".join(text))
                    text = []
                self.pos += 1
                parts.append(Node("var", line, name=self.read_variable_name()))
                continue
            if ch == "$" and self.peek(1) in "{":
                raise self.outside("The variable syntax '${...}' in a string")
            text.append(ch)
            self.pos += 1
        raise self.error('The string is missing the terminator: ".', "TerminatorExpectedAtEndOfString")


def parse(source):
    """The statements of a script; raises ParseError."""
    return Parser(source).parse_script()
