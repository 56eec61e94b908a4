"""The PQL grammar (pql.lark), shipped inside the wheel as package data."""
