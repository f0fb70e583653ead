"""Build hook: compiles the chat lane's native core (tools/dataset_validator/native) into the
package, for wheels and editable installs alike.

setuptools does the compiling, as it knows each platform's compiler and flags. Without a working
C compiler the build goes on without the core, with a warning: the validator then reads every
record on the Python path, which writes the same report, several times slower.
"""

import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "tools.dataset_validator._chat_lines"
NATIVE = Path("tools/dataset_validator/native")


class NativeCoreHook(BuildHookInterface):
    PLUGIN_NAME = "native-core"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        extension = Extension(
            MODULE,
            sources=[str(NATIVE / "chat_lines.c"), str(NATIVE / "vendor" / "yyjson.c")],
            # the core only reads JSON: leave out yyjson's writer and its JSON Pointer/Patch
            define_macros=[("YYJSON_DISABLE_WRITER", "1"), ("YYJSON_DISABLE_UTILS", "1")],
        )
        command = build_ext(Distribution({"name": "chat-lines", "ext_modules": [extension]}))
        command.inplace = True  # next to the sources: editable installs import it from there
        with tempfile.TemporaryDirectory() as temp:
            command.build_temp = command.build_lib = temp
            command.ensure_finalized()
            try:
                command.run()
            except Exception as exc:  # setuptools raises its own errors, and OSError
                self.app.display_warning(
                    f"the native chat lane was not built ({exc}); dataset validation will "
                    "read every record in Python (same results, several times slower)"
                )
                return
        built = Path(self.root, command.get_ext_fullpath(MODULE)).relative_to(self.root)
        build_data["artifacts"].append(built.as_posix())
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
