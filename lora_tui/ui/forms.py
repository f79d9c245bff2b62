"""The Minimal form (the 16 fields of kohya_ss_minimal's tab, under a model family choice) and the Advanced form (every field, one section at a
time). Both are views of the app's one `TrainingConfig`: they ask the app to build rows (`LoraApp.make_row`) and
never keep values of their own.

Only the visible form keeps its rows mounted (`populate` / `clear`): an editor has the id `f-<field>` everywhere,
and mounting all ~250 fields would take seconds (notes/textual.md §2d).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from lora_tui.ui.inputs import OrderedInput

if TYPE_CHECKING:
    from lora_tui.ui.app import LoraApp

# Rows shown at most when filtering across sections: more would cost the mount time the navigator avoids.
FILTER_LIMIT = 40
# A section longer than this is split into pages ("Advanced 1/3"): mounting ~60 rows at once takes a second.
PAGE_SIZE = 22


def minimal_fields() -> list[str]:
    """The Minimal form's fields in display order (the model's `minimal_fields()`, spec §8.2)."""
    from lora_tui.config.model import minimal_fields as model_minimal

    return [m.name for m in model_minimal()]


@lru_cache(maxsize=1)
def sections() -> dict[str, list[str]]:
    """Every field by navigator entry, in the model's `SECTIONS` order; long sections are split into pages."""
    from lora_tui.config.model import SECTIONS, all_field_meta

    by_section: dict[str, list[str]] = {}
    for meta in all_field_meta():
        by_section.setdefault(meta.section or "Other", []).append(meta.name)
    order = [s for s in SECTIONS if s in by_section] + [s for s in by_section if s not in SECTIONS]
    out: dict[str, list[str]] = {}
    for sec in order:
        names = by_section[sec]
        pages = max(1, -(-len(names) // PAGE_SIZE))
        size = -(-len(names) // pages)
        for i in range(pages):
            out[sec if pages == 1 else f"{sec} {i + 1}/{pages}"] = names[i * size:(i + 1) * size]
    return out


def section_of(name: str) -> str:
    """The navigator entry (section or section page) holding field `name`."""
    for sec, names in sections().items():
        if name in names:
            return sec
    raise KeyError(name)


@dataclass(frozen=True)
class FamilyChoice:
    """One entry of the Minimal form's model family choice (`#minimal-family-choice`).

    Attributes:
        label: what the choice list shows, e.g. "SD2.x 768-v".
        family: the model family it makes (`config.model.family`), e.g. "sd2".
        fields: the model fields it writes; every field of `FAMILY_FIELDS` it does not name is written False.
            As kohya_ss's model picker: SD2.x is `v2`, a 768-v SD2.x model also `v_parameterization`; SDXL is
            `sdxl` (the script sdxl_train_network.py); Flux.1 is `flux1_checkbox` (flux_train_network.py); SD3 is
            `sd3_checkbox` (sd3_train_network.py); SD1.x sets none.
        form: the Minimal fields this family shows, in order; empty: the model's 16 (`minimal_fields()`).
    """

    label: str
    family: str
    fields: tuple[tuple[str, Any], ...] = ()
    form: tuple[str, ...] = ()

    def updates(self) -> dict[str, Any]:
        """The field values this choice writes (all of `FAMILY_FIELDS`)."""
        return {name: False for name in FAMILY_FIELDS} | dict(self.fields)


FAMILY_FIELDS = ("sdxl", "v2", "v_parameterization", "flux1_checkbox", "sd3_checkbox")
"""The model fields a family choice writes (the family checkboxes and the prediction type)."""

FLUX1_FORM = ("pretrained_model_name_or_path", "ae", "clip_l", "t5xxl", "tokenizer_cache_dir", "train_data_dir",
              "output_name", "output_dir", "learning_rate", "network_dim", "network_alpha", "epoch",
              "max_resolution", "train_batch_size", "guidance_scale", "timestep_sampling", "model_prediction_type")
"""The Minimal form for Flux.1: the transformer (the checkpoint field) and the three other model files
flux_train_network.py loads (`ae`, `clip_l`, `t5xxl`), the folder holding the T5 tokenizer (offline there is no
other source), the common fields, and the three settings that shape a Flux run: the guidance value fed to
flux1-dev, how timesteps are drawn, and how the prediction becomes the target (kohya's Flux guide trains with
`raw`; sd-scripts' default is `sigma_scaled`). The text-encoder rate is left out: the Flux presets train the
transformer only."""

SD3_FORM = ("pretrained_model_name_or_path", "sd3_clip_l", "clip_g", "sd3_t5xxl", "tokenizer_cache_dir",
            "train_data_dir", "output_name", "output_dir", "learning_rate", "network_dim", "network_alpha", "epoch",
            "max_resolution", "train_batch_size", "weighting_scheme")
"""The Minimal form for SD3 / SD3.5: the checkpoint and the three text-encoder files sd3_train_network.py loads
(`--clip_l`, `--clip_g`, `--t5xxl`; each may be left empty when the single-file checkpoint holds it), the folder
holding the T5 tokenizer (offline there is no other source), the common fields, and how timesteps are weighted
(`--weighting_scheme`). sd-scripts' `--training_shift` has no field (additional_parameters passes it)."""

MINIMAL_FAMILIES: dict[str, FamilyChoice] = {
    "sd1": FamilyChoice("SD1.x", "sd1"),
    "sd2": FamilyChoice("SD2.x 512 (ε)", "sd2", (("v2", True),)),
    "sd2-v": FamilyChoice("SD2.x 768-v", "sd2", (("v2", True), ("v_parameterization", True))),
    "sdxl": FamilyChoice("SDXL", "sdxl", (("sdxl", True),)),
    "flux1": FamilyChoice("Flux.1", "flux1", (("flux1_checkbox", True),), FLUX1_FORM),
    "sd3": FamilyChoice("SD3 / SD3.5", "sd3", (("sd3_checkbox", True),), SD3_FORM),
}
"""The Minimal form's family choices, in list order: every family of `config.model.FAMILIES` (the five scripts
kohya_ss's Start runs), so every config has its Minimal form."""


def family_choice(cfg: Any) -> str:
    """The key of `MINIMAL_FAMILIES` that `cfg` is: the entry whose fields all match, else the first entry of its
    family (an SDXL config with `v_parameterization` set is "sdxl")."""
    from lora_tui.config.model import family

    fam = family(cfg)
    candidates = [key for key, choice in MINIMAL_FAMILIES.items() if choice.family == fam]
    for key in candidates:
        if all(getattr(cfg, name) == value for name, value in MINIMAL_FAMILIES[key].updates().items()):
            return key
    return candidates[0]


class MinimalForm(VerticalScroll):
    """The 16 Minimal fields (Flux.1 and SD3: their own, `FLUX1_FORM`, `SD3_FORM`), mounted while the form is
    shown, under the model family choice (`#minimal-family-choice`: SD1.x, SD2.x 512, SD2.x 768-v, SDXL, Flux.1,
    SD3, from `MINIMAL_FAMILIES`; `#minimal-family` names the script that trains it). Choosing a family writes its
    fields as kohya_ss does and keeps every other value."""

    app: LoraApp  # type: ignore[assignment]
    # Not a Tab stop of its own: Tab goes from field to field (each focused field scrolls into view); a focusable
    # form was an invisible stop that swallowed typed keys.
    can_focus = False

    def compose(self) -> ComposeResult:
        yield Static("", id="minimal-head", classes="form-head")
        with Horizontal(classes="field-row family-row", id="row-minimal-family"):
            yield Label("Model family\n[dim]sdxl · v2[/]", classes="field-label")
            with Vertical(classes="family-editor"):
                yield Select([(c.label, key) for key, c in MINIMAL_FAMILIES.items()], id="minimal-family-choice",
                             compact=True, allow_blank=False, value=family_choice(self.app.config))
                yield Static("", id="minimal-family", classes="locked-value")
        # The rows are composed with the form (one mount pass at start-up, the first screen the user sees).
        yield Vertical(*[self.app.make_row(n) for n in self.shown_fields()], id="minimal-body")

    def on_mount(self) -> None:
        self.refresh_head()
        self.focus_first()  # before Textual's auto-focus, which only acts while nothing has the focus
        self.call_after_refresh(self._initial_focus)

    def _initial_focus(self) -> None:
        # Textual's auto-focus takes the first focusable widget, hidden ones included (in a real terminal: the
        # Run view's queue list, where typed keys went nowhere): start on the first field, as F2 does, unless the
        # focus is already on a widget that can be seen (a field, or the problems panel a quick F5 focused).
        focused = self.app.focused
        hidden = focused is None or not all(n.display for n in focused.ancestors_with_self)
        if self.app.view == "minimal" and hidden:
            self.focus_first()

    def shown_fields(self) -> list[str]:
        """The Minimal fields shown for the current config (its family's form). The learning-rate
        slot shows the field the U-Net's rate comes from (`config.rates.minimal_lr_field`): `unet_lr` when a file
        sets it, else `learning_rate`, so the value on screen is the one the U-Net trains at."""
        from lora_tui.config.rates import minimal_lr_field

        lr_field = minimal_lr_field(self.app.config)
        form = MINIMAL_FAMILIES[family_choice(self.app.config)].form or minimal_fields()
        names = [lr_field if n == "learning_rate" else n for n in form]
        return [n for n in names if self.app.field_applies(n)]

    async def populate(self) -> None:
        """Mount the rows for the current model values (replacing any)."""
        body = self.query_one("#minimal-body", Vertical)
        await body.remove_children()
        await body.mount_all([self.app.make_row(n) for n in self.shown_fields()])
        self.refresh_head()

    def refresh_head(self) -> None:
        """The header line, and the family choice with its script."""
        from lora_tui.config.model import family, script_name

        cfg = self.app.config
        fam, lora_type = family(cfg), getattr(cfg, "LoRA_type", "")
        label = FAMILY_NAMES.get(fam, fam)
        vpred = " v-pred" if getattr(cfg, "v_parameterization", False) else ""
        self.query_one("#minimal-head", Static).update(
            f"[b]Minimal[/b] · {label}{vpred} LoRA · {lora_type} · F3: every field")
        choice = family_choice(cfg)
        select = self.query_one("#minimal-family-choice", Select)
        if select.value != choice:
            with select.prevent(Select.Changed):
                select.value = choice
        self.query_one("#minimal-family", Static).update(f"{label} · {script_name(cfg)}")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "minimal-family-choice":
            return
        event.stop()
        key = event.value
        # Only the user's choice (the list has the focus then): a Select also reports its value when mounted.
        if not event.select.has_focus or key not in MINIMAL_FAMILIES or key == family_choice(self.app.config):
            return
        self.app.set_family_fields(MINIMAL_FAMILIES[key].updates(), MINIMAL_FAMILIES[key].label)

    def focus_first(self) -> None:
        """Focus the first editor."""
        editors = self.query(".field-editor")
        if editors:
            editors.first().focus()

    async def clear(self) -> None:
        """Remove the rows (the values stay in the model)."""
        await self.query_one("#minimal-body", Vertical).remove_children()


FAMILY_NAMES = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL", "flux1": "Flux.1", "sd3": "SD3"}


class AdvancedForm(Horizontal):
    """Section navigator: an `OptionList` of sections and a filter on the left, one section's rows on the right.
    ctrl+f (or / outside a text box) goes to the filter `#adv-filter`."""

    app: LoraApp  # type: ignore[assignment]

    BINDINGS = [Binding("ctrl+f", "focus_filter", "Filter fields", tooltip="Find a field by name, label or key"),
                Binding("slash", "focus_filter", "Filter", show=False)]

    def focus_first(self) -> None:
        """Focus the shown section's first editor, or the section list when the section shows none."""
        editors = self.query(".field-editor")
        (editors.first() if editors else self.query_one("#sections", OptionList)).focus()

    def section_help(self) -> tuple[str, list[str]]:
        """F1 on the section list or its filter: (title, paragraphs) for `NotesDialog`: how the list is used,
        then each field the highlighted section shows, as "label (name): what it does" (the first paragraph of
        the field's help; F1 on the field gives all of it)."""
        from lora_tui.ui.fields import field_spec

        secs = sections()
        option = self.query_one("#sections", OptionList).highlighted_option
        section = option.id if option is not None and option.id in secs else self.current or next(iter(secs))
        names = [n for n in secs[section] if self.app.field_applies(n)]
        hidden = len(secs[section]) - len(names)
        paragraphs = ["Section list: ↑/↓ shows a section, Enter or Tab goes to its fields, ctrl+f (or /) finds a "
                      "field by name, label or key. F1 on a field shows all of its help."]
        if hidden:
            paragraphs.append(f"{hidden} field{'s' * (hidden != 1)} of this section not used by "
                              f"{self.app.family_label()} {'are' if hidden != 1 else 'is'} hidden.")
        for name in names:
            spec = field_spec(name)
            paragraphs.append(f"{spec.label} ({name}): {spec.help.split(chr(10) * 2)[0].strip()}")
        return f"{section} · {len(names)} field{'s' * (len(names) != 1)}", paragraphs

    def action_focus_filter(self) -> None:
        filt = self.query_one("#adv-filter", Input)
        filt.focus()
        filt.action_end()

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current: str | None = None
        self._filter = ""
        self._pending_section: str | None = None

    def compose(self) -> ComposeResult:
        secs = sections()
        with Vertical(id="adv-nav"):
            yield OrderedInput(placeholder="filter fields…", id="adv-filter", compact=True)
            yield OptionList(*[Option(f"{s} ({len(f)})", id=s) for s, f in secs.items()], id="sections")
        with VerticalScroll(id="adv-body", can_focus=False):  # no invisible Tab stop between filter and fields
            yield Static("", id="adv-head", classes="form-head")
            yield Vertical(id="adv-rows")

    async def populate(self, section: str | None = None) -> None:
        """Show `section` (default: the current one, else the first)."""
        secs = sections()
        if section is None:
            section = self.current if self.current in secs else next(iter(secs))
        await self.show_section(section)

    async def show_section(self, section: str, clear_filter: bool = True) -> None:
        """Mount `section`'s applicable rows, removing the rows shown before; empty the filter box unless
        `clear_filter` is False (the box was just emptied by the user, who may already be typing again)."""
        secs = sections()
        self.current = section
        self._filter = ""
        filt = self.query_one("#adv-filter", Input)
        if clear_filter and filt.value:
            with filt.prevent(Input.Changed):
                filt.value = ""
        nav = self.query_one("#sections", OptionList)
        idx = nav.get_option_index(section)
        if nav.highlighted != idx:
            with nav.prevent(OptionList.OptionHighlighted):
                nav.highlighted = idx
        names = secs.get(section, [])
        shown = [n for n in names if self.app.field_applies(n)]
        hidden = len(names) - len(shown)
        note = f" · {hidden} hidden (not used by {self.app.family_label()})" if hidden else ""
        await self._mount_rows(shown, f"[b]{section}[/b] · {len(shown)} field{'s' * (len(shown) != 1)}{note}")

    async def show_filter(self, text: str) -> None:
        """Rows of every applicable field whose name, label or TOML key contains `text` (at most FILTER_LIMIT)."""
        from lora_tui.ui.fields import field_spec

        self._filter = text
        needle = text.lower().strip()
        if not needle:
            # Not populate(): it empties the box, and letters typed while these rows mount would be lost
            # ("network" typed right after erasing "epoch" became "twork": a trial on a busy machine).
            secs = sections()
            await self.show_section(self.current if self.current in secs else next(iter(secs)), clear_filter=False)
            return
        hits = []
        for names in sections().values():
            for n in names:
                spec = field_spec(n)
                hay = f"{n} {spec.label} {spec.toml_key or ''}".lower()
                if needle in hay and self.app.field_applies(n):
                    hits.append(n)
        more = f" (first {FILTER_LIMIT} shown)" if len(hits) > FILTER_LIMIT else ""
        # Content, not markup: the typed text may hold "[x=" (MarkupError)
        head = Content.assemble(("Filter", "bold"), f" “{text}” · {len(hits)} field{'s' * (len(hits) != 1)}{more}")
        await self._mount_rows(hits[:FILTER_LIMIT], head)

    async def _mount_rows(self, names: list[str], head: str | Content) -> None:
        rows = self.query_one("#adv-rows", Vertical)
        with self.app.batch_update():
            await rows.remove_children()
            self.query_one("#adv-head", Static).update(head)
            await rows.mount_all([self.app.make_row(n) for n in names])
        self.query_one("#adv-body", VerticalScroll).scroll_home(animate=False)

    async def clear(self) -> None:
        """Remove the rows (the values stay in the model)."""
        await self.query_one("#adv-rows", Vertical).remove_children()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id != "sections" or event.option.id is None:
            return
        event.stop()
        if self.app.view != "advanced":
            return  # the list highlights its first entry on mount; rows are only mounted while the form is shown
        # Arrowing through the list should not mount every section passed over: mount the one the cursor rests on.
        self._pending_section = event.option.id
        self.set_timer(0.12, self._mount_pending)

    async def _mount_pending(self) -> None:
        section, self._pending_section = self._pending_section, None
        if self.app.view != "advanced":
            return
        if section and (section != self.current or self._filter):
            await self.show_section(section)

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "sections" or event.option.id is None:
            return
        event.stop()
        self._pending_section = None
        if event.option.id != self.current or self._filter:
            await self.show_section(event.option.id)
        editors = self.query(".field-editor")
        if editors:
            editors.first().focus()

    async def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "adv-filter":
            return
        event.stop()
        await self.show_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "adv-filter":
            return
        event.stop()
        editors = self.query(".field-editor")
        if editors:
            editors.first().focus()
