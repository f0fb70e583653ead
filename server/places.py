"""Where a server reads datasets and writes packages, by transport and by owner.

Over stdio the one user is the machine's user: the working directory is a dataset root by
default and the client's roots are honoured. Over HTTP a team shares the server: only the
configured roots are read, never a client's (its roots describe its own machine). Either way
every owner writes packages into a folder of their own, and no dataset root may reach the
package folders (nor the server's own data: drafts, caches).
"""

from pathlib import Path
from typing import Literal

from server.paths import user_data_dir
from server.settings import Settings
from tools.errors import UserError
from tools.package_builder import owner_folders, sweep_leftovers

Transport = Literal["stdio", "http"]
STDIO_DEFAULT_ROOTS = (Path("."),)
PACKAGES_DIR = "packages"


def configured_dataset_roots(settings: Settings, transport: Transport) -> list[Path]:
    """datasets.roots, or the transport's default: the working directory over stdio, none over
    HTTP."""
    roots = settings.datasets.roots
    if roots is not None:
        return list(roots)
    return list(STDIO_DEFAULT_ROOTS) if transport == "stdio" else []


def package_root(settings: Settings) -> Path:
    """package.yaml output.root, or packages/ in the user data directory."""
    root = settings.package.output.root
    return (root or user_data_dir() / PACKAGES_DIR).expanduser().resolve()


def package_roots(settings: Settings) -> list[Path]:
    """The package root and the extra roots: every folder that holds owners' packages."""
    extra = settings.package.output.extra_roots
    return [package_root(settings), *(p.expanduser().resolve() for p in extra)]


def owner_package_folders(settings: Settings, owner: str) -> list[Path]:
    """The owner's own folder in each package root; the first is where packages go by default."""
    return owner_folders(settings.package.output, package_root(settings), owner)


def private_folders(settings: Settings) -> list[Path]:
    """What no dataset ref may reach, whatever the roots: the package folders and the server's
    data directory (drafts, caches)."""
    return [*package_roots(settings), user_data_dir().resolve()]


def check_places(settings: Settings, transport: Transport) -> None:
    """UserError when a configured dataset root holds a package root or lies inside one: its
    users would read each other's packages. The stdio default (the working directory) is not
    refused, as it may well be the home directory: the package folders are kept out of it."""
    if settings.datasets.roots is None:
        return
    for root in configured_dataset_roots(settings, transport):
        real = root.expanduser().resolve()
        for packages in package_roots(settings):
            if real.is_relative_to(packages) or packages.is_relative_to(real):
                raise UserError(
                    f"The dataset root {root} and the package folder {packages} overlap, so "
                    "users could read each other's packages as datasets. Keep them apart: "
                    "change datasets.roots (datasets.yaml) or output.root (package.yaml)."
                )


def sweep_package_leftovers(settings: Settings, owner: str | None = None) -> int:
    """Clear what interrupted package writes left (sweep_leftovers) in one owner's folders, or
    in every package root; how many leftovers went."""
    folders = owner_package_folders(settings, owner) if owner else package_roots(settings)
    return sum(len(sweep_leftovers(folder)) for folder in folders if folder.is_dir())
