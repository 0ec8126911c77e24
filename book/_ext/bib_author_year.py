"""Bibliography labels in the same author-year form as the citations in the text ("Liu et al. 2018"),
instead of pybtex's alpha labels ("[LRS+18]"). Registered as the pybtex style ``authoryear``."""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return " ".join(person.rich_last_names and [str(p) for p in person.rich_last_names] or person.last_names)


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [self._label(entry) for entry in sorted_entries]
        total = {label: labels.count(label) for label in labels}
        seen: dict[str, int] = {}
        for label in labels:  # the same author(s) and year twice: 2018a, 2018b
            seen[label] = seen.get(label, 0) + 1
            yield label if total[label] == 1 else f"{label}{chr(ord('a') + seen[label] - 1)}"

    @staticmethod
    def _label(entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_surname(p) for p in people]
        if not names:
            who = entry.fields.get("organization", entry.key)
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
