"""The package's public surface: cheap import, lazy names, neuraloperator registration."""

import subprocess
import sys


def test_package_import_is_light_and_lazy_names_resolve():
    code = (
        "import sys, mano_pde; assert 'torch' not in sys.modules, 'import mano_pde loaded torch'; "
        "from neuralop.models.base_model import available_models; "
        "assert mano_pde.MANO.__name__ == 'MANO' and 'mano' in available_models(); "
        "assert callable(mano_pde.create_model) and mano_pde.data.open_darcy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
