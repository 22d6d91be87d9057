"""The one config system: typed sections checked key by key, one override grammar
(``--set section.key=value``) and the recipes that ship inside the package."""

from omnifuse.config.loader import list_recipes, read_config_file, recipes_dir, resolve_recipe
from omnifuse.config.overrides import apply_overrides, parse_override
from omnifuse.config.schema import check_keys, encoder_entries, mapping, section
from omnifuse.config.sections import CacheSection, DataSection

__all__ = [
    "CacheSection",
    "DataSection",
    "apply_overrides",
    "check_keys",
    "encoder_entries",
    "list_recipes",
    "mapping",
    "parse_override",
    "read_config_file",
    "recipes_dir",
    "resolve_recipe",
    "section",
]
