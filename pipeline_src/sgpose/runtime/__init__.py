"""How stages run."""
