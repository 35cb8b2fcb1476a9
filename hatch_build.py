"""Editable installs: ``import meter_drivers`` loads the folder ``meter-drivers/``.

The wheel gets meter-drivers/ as meter_drivers through ``force-include`` (pyproject.toml).
Hatchling's dev mode maps each package to a folder of the same name, and on its own would put
a frozen copy of the force-included folder into the editable wheel. This hook maps the name
to the folder instead, with the import hook hatchling uses for the other packages (the
``editables`` library); the files it adds replace that copy.
"""

import os
import shutil
import tempfile

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        if version != "editable":
            return
        from editables import EditableProject

        project = EditableProject(f"{self.metadata.name}-meter-drivers", self.root)
        project.map("meter_drivers", "meter-drivers")
        self._scratch = tempfile.mkdtemp()
        for name, content in project.files():
            path = os.path.join(self._scratch, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
            build_data["force_include_editable"][path] = name

    def finalize(self, version, build_data, artifact_path):
        if version == "editable":
            shutil.rmtree(self._scratch, ignore_errors=True)
