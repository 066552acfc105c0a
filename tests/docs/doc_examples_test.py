"""Tests of the documentation harness (doc_examples.py): each way a document's example can be wrong must fail
the run, and each marker must do what it says. Run by ctest `docs_examples_harness` with /usr/bin/python3."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import doc_examples  # noqa: E402

FENCE = "```"


class HarnessTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="offsim-docs-test-"))
        self.source = self.tmp / "source"
        (self.source / "include").mkdir(parents=True)
        (self.source / "python").mkdir()
        (self.source / "data.txt").write_text("committed\n")
        (self.source / "whole.txt").write_text("echo from-a-file\n")
        self.build = self.tmp / "build"
        (self.build / "cli").mkdir(parents=True)
        self.offsim = self.build / "cli" / "offsim"
        # A stand-in offsim: `offsim fail N` exits N, `offsim eval --suite F ...` accepts F when it says "ok".
        self.offsim.write_text(textwrap.dedent("""\
            #!/bin/sh
            case "$1" in
              fail) exit "$2" ;;
              eval) grep -q '"ok"' "$3" ;;
              *) echo "offsim $*" ;;
            esac
            """))
        self.offsim.chmod(0o755)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_doc(self, text: str) -> tuple[list[str], dict, str]:
        work = self.tmp / f"work{len(list(self.tmp.glob('work*')))}"
        work.mkdir()
        ctx = doc_examples.Context(self.source, self.build, self.offsim, os.environ.get("CXX", "c++"), work,
                                   work / "checkout", {})
        ctx.copy.mkdir()
        doc_examples.make_copy(ctx)
        ctx.env = doc_examples.make_env(ctx)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            failures, counts = doc_examples.run_blocks("doc.md", textwrap.dedent(text), ctx)
        self.copy = ctx.copy
        return failures, counts, out.getvalue()

    def test_a_passing_shell_block_passes_and_runs_in_a_copy_with_offsim_on_path(self) -> None:
        failures, counts, out = self.run_doc(f"""\
            {FENCE}sh
            offsim hello
            build/release/cli/offsim again
            cat data.txt
            echo changed > data.txt
            {FENCE}
            """)
        self.assertEqual(failures, [])
        self.assertEqual(counts["ran"], 1)
        self.assertIn("offsim hello", out)
        self.assertIn("offsim again", out)
        self.assertEqual((self.source / "data.txt").read_text(), "committed\n")  # the checkout is untouched
        self.assertEqual((self.copy / "data.txt").read_text(), "changed\n")

    def test_a_failing_command_fails_the_block_even_when_a_later_one_passes(self) -> None:
        failures, _, out = self.run_doc(f"""\
            {FENCE}sh
            offsim fail 3
            echo still here
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("doc.md:1", failures[0])
        self.assertIn("line 1 of the block exited with 3, expected 0", out)
        self.assertNotIn("still here", out)

    def test_a_failing_stage_of_a_pipeline_fails_the_block(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            {FENCE}sh
            offsim fail 2 | cat
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)

    def test_an_exit_comment_is_what_the_command_must_exit_with(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            {FENCE}sh
            offsim fail 1   # exit 1: a property failed
            offsim fail 2 \\
                 --more      # exit 2
            echo after
            {FENCE}
            """)
        self.assertEqual(failures, [])
        failures, _, out = self.run_doc(f"""\
            {FENCE}sh
            offsim fail 2   # exit 1
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("exited with 2, expected 1", out)

    def test_a_command_whose_comment_says_exit_1_must_not_pass(self) -> None:
        failures, _, out = self.run_doc(f"""\
            {FENCE}sh
            offsim fine     # exit 1
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("did not exit with 1", out)

    def test_blocks_of_a_file_share_the_copy_in_order(self) -> None:
        failures, counts, _ = self.run_doc(f"""\
            {FENCE}sh
            echo made > made.txt
            {FENCE}

            {FENCE}python
            assert open("made.txt").read() == "made\\n"
            {FENCE}
            """)
        self.assertEqual(failures, [])
        self.assertEqual(counts["ran"], 2)

    def test_a_failing_python_block_fails(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            {FENCE}python
            raise SystemExit("no")
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)

    def test_python_blocks_run_with_debians_interpreter_and_python_on_the_path(self) -> None:
        (self.source / "python" / "shimmod.py").write_text("VALUE = 7\n")
        failures, _, _ = self.run_doc(f"""\
            {FENCE}python
            import sys, shimmod
            assert sys.executable == "/usr/bin/python3", sys.executable
            assert shimmod.VALUE == 7
            {FENCE}
            """)
        self.assertEqual(failures, [])

    def test_a_block_without_a_tag_is_an_error(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            {FENCE}
            offsim hello
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("tag it with what it is", failures[0])

    def test_text_blocks_are_not_run(self) -> None:
        failures, counts, _ = self.run_doc(f"""\
            {FENCE}text
            offsim fail 1
            {FENCE}
            """)
        self.assertEqual(failures, [])
        self.assertEqual(counts["text"], 1)

    def test_skip_needs_a_reason_and_is_then_not_run(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: skip -->
            {FENCE}sh
            offsim fail 1
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("needs its reason", failures[0])
        failures, counts, out = self.run_doc(f"""\
            <!-- docs-test: skip: runs apt-get, which needs root and the network -->
            {FENCE}sh
            offsim fail 1
            {FENCE}
            """)
        self.assertEqual(failures, [])
        self.assertEqual(counts["skipped"], 1)
        self.assertIn("SKIPPED: runs apt-get", out)

    def test_known_failing_must_fail_and_is_an_error_once_it_passes(self) -> None:
        failures, counts, _ = self.run_doc(f"""\
            <!-- docs-test: known-failing: issue 20 item 10 fixes this -->
            {FENCE}sh
            offsim fail 1
            {FENCE}
            """)
        self.assertEqual(failures, [])
        self.assertEqual(counts["known-failing"], 1)
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: known-failing: issue 20 item 10 fixes this -->
            {FENCE}sh
            offsim fine
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("remove the marker", failures[0])

    def test_an_unknown_marker_is_an_error(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: ignore: whatever the reason -->
            {FENCE}sh
            offsim fine
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)

    def test_same_as_checks_the_block_against_the_file(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: same-as: whole.txt -->
            {FENCE}sh
            echo from-a-file
            {FENCE}
            """)
        self.assertEqual(failures, [])
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: same-as: whole.txt -->
            {FENCE}sh
            echo edited
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("differs from whole.txt", failures[0])

    def test_excerpt_of_checks_the_block_is_in_the_file_and_does_not_run_it(self) -> None:
        (self.source / "policy.cpp").write_text("int f() {\n  return 1;\n}\nint g() { return 2; }\n")
        failures, counts, out = self.run_doc(f"""\
            <!-- docs-test: excerpt-of: policy.cpp -->
            {FENCE}cpp
            int f() {{
              return 1;
            }}
            {FENCE}
            """)
        self.assertEqual(failures, [])
        self.assertIn("verbatim in policy.cpp", out)
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: excerpt-of: policy.cpp -->
            {FENCE}cpp
            int f() {{ return 3; }}
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("not an excerpt of policy.cpp", failures[0])

    def test_a_cpp_file_shown_whole_compiles_with_its_folder_on_the_include_path(self) -> None:
        (self.source / "example").mkdir()
        (self.source / "example" / "local.hpp").write_text("inline int local() { return 0; }\n")
        (self.source / "example" / "main.cpp").write_text('#include "local.hpp"\nint main() { return local(); }\n')
        failures, _, _ = self.run_doc(f"""\
            <!-- docs-test: same-as: example/main.cpp -->
            {FENCE}cpp
            #include "local.hpp"
            int main() {{ return local(); }}
            {FENCE}
            """)
        self.assertEqual(failures, [])

    def test_cpp_blocks_are_compiled(self) -> None:
        (self.source / "include" / "lib.hpp").write_text("inline int answer() { return 42; }\n")
        failures, _, _ = self.run_doc(f"""\
            {FENCE}cpp
            #include "lib.hpp"
            int main() {{ return answer() == 42 ? 0 : 1; }}
            {FENCE}
            """)
        self.assertEqual(failures, [])
        failures, _, _ = self.run_doc(f"""\
            {FENCE}cpp
            int main() {{ int unused; return 0; }}
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)  # -Werror

    def test_json_must_parse_and_a_scenario_must_be_accepted_by_offsim_eval(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            {FENCE}json
            {{"a": [1, 2, ...]}}
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("not valid JSON", failures[0])
        failures, _, _ = self.run_doc(f"""\
            {FENCE}json
            {{"format": "offsim-scenario/1", "name": "ok"}}
            {FENCE}
            """)
        self.assertEqual(failures, [])
        failures, _, _ = self.run_doc(f"""\
            {FENCE}json
            {{"format": "offsim-scenario/1", "name": "refused"}}
            {FENCE}
            """)
        self.assertEqual(len(failures), 1)

    def test_an_unclosed_block_is_an_error(self) -> None:
        failures, _, _ = self.run_doc(f"""\
            {FENCE}sh
            offsim hello
            """)
        self.assertEqual(len(failures), 1)
        self.assertIn("never closed", failures[0])


if __name__ == "__main__":
    unittest.main()
