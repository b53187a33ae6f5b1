"""``python -m tasks.attacks``: print the attack table of the README (from the catalogue)."""

from tasks.attacks.specs import markdown_table

print(markdown_table())
