"""Data: bring your own data (an image archive, a folder on the server, a CSV table), list and delete it,
and browse any data set."""
import streamlit as st

from dlx import settings
from dlx.data import DATASETS, browse, load_dataset
from dlx.data.registry import files_problem
from dlx.data.tables import import_table
from dlx.data.user_intake import name_or_default
from dlx.data.user_sets import AUGMENTATIONS, delete_user_set, import_image_folder, import_uploaded_images
from dlx.data.user_texts import import_text_csv
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.views.text import md
from pages import enter_frame

enter_frame()

BROWSED = "data.browsed"  # the data set shown under Browse

st.title("Data")
store = default_store()


def report(action) -> None:
    """Run an import; show what was kept and what was skipped, or why it was refused."""
    try:
        user_set, notes = action()
    except DlxError as err:
        st.error(md(err), icon=":material/block:")
        return
    st.success(f"Data set **{md(user_set.name)}** is ready: {user_set.rows:,} samples, "
               f"{len(user_set.classes)} classes. It is offered on the Launch page.", icon=":material/check:")
    for note in notes:
        st.info(md(note))
    st.session_state[BROWSED] = user_set.name


with st.expander("Bring your data", expanded=not browse.user_sets_table(store).shape[0]):
    upload, folder, table, texts = st.tabs(["Image archive", "Image folder on the server", "CSV table",
                                            "CSV of texts"])
    with upload, st.form("data.upload"):
        archive = st.file_uploader("Zip or tar of class folders (one sub-folder per class)",
                                   type=["zip", "tar", "gz", "tgz", "bz2", "xz"], key="data.archive")
        name = st.text_input("Name", key="data.archive_name", placeholder="the archive's name",
                             help="Empty: the archive's file name (my-pets.zip: my-pets).")
        side = st.number_input("Image size (pixels)", 8, 512, 32, key="data.archive_side")
        augment = st.multiselect("Training augmentation", AUGMENTATIONS, key="data.archive_augment")
        if st.form_submit_button("Check and add", type="primary"):
            if archive is None:
                st.error("upload: choose an archive first")
            else:
                report(lambda: import_uploaded_images(store, archive.getvalue(), archive.name,
                                                      name_or_default(name, archive.name), int(side),
                                                      tuple(augment)))
    with folder, st.form("data.folder"):
        try:
            roots = settings.data_roots()
        except DlxError as err:
            roots = []
            st.error(md(err), icon=":material/block:")
        if roots:
            st.caption("Folders inside these may be registered (`DLX_DATA_ROOTS`): "
                       + ", ".join(f"`{root}`" for root in roots))
        else:
            st.warning("No folder on the server may be registered: " + (
                "this app is open to the network and `DLX_DATA_ROOTS` is not set." if settings.exposed()
                else "`DLX_DATA_ROOTS` names no folder."), icon=":material/folder_off:")
        path = st.text_input("Folder path on the server", key="data.folder_path")
        name = st.text_input("Name", key="data.folder_name", placeholder="the folder's name",
                             help="Empty: the folder's own name.")
        side = st.number_input("Image size (pixels)", 8, 512, 32, key="data.folder_side")
        augment = st.multiselect("Training augmentation", AUGMENTATIONS, key="data.folder_augment")
        if st.form_submit_button("Check and add", type="primary"):
            report(lambda: import_image_folder(store, path, name_or_default(name, path), int(side), tuple(augment)))
    with table, st.form("data.table"):
        csv_file = st.file_uploader("CSV with a header row", type=["csv"], key="data.csv")
        label = st.text_input("Label column", key="data.label_column")
        name = st.text_input("Name", key="data.table_name", placeholder="the file's name",
                             help="Empty: the CSV's file name (iris.csv: iris).")
        if st.form_submit_button("Check and add", type="primary"):
            if csv_file is None:
                st.error("file: choose a CSV file first")
            else:
                report(lambda: import_table(store, csv_file.getvalue(), name_or_default(name, csv_file.name),
                                            label.strip(), csv_file.name))

    with texts, st.form("data.texts"):
        texts_file = st.file_uploader("CSV with a text column and a label column", type=["csv"], key="data.texts_csv")
        text_column = st.text_input("Text column", key="data.text_column")
        label = st.text_input("Label column", key="data.texts_label_column")
        name = st.text_input("Name", key="data.texts_name", placeholder="the file's name",
                             help="Empty: the CSV's file name.")
        if st.form_submit_button("Check and add", type="primary"):
            if texts_file is None:
                st.error("file: choose a CSV file first")
            else:
                report(lambda: import_text_csv(store, texts_file.getvalue(), name_or_default(name, texts_file.name),
                                               text_column.strip(), label.strip(), texts_file.name))

st.subheader("Your data sets")
mine = browse.user_sets_table(store)
if mine.empty:
    st.caption("None yet: add one above.")
else:
    st.dataframe(mine, hide_index=True, width="stretch")
    with st.form("data.delete"):
        doomed = st.selectbox("Data set", list(mine["name"]), key="data.delete_name")
        confirm = st.checkbox("Delete even if runs use it", key="data.delete_confirm")
        if st.form_submit_button("Delete with its files"):
            try:
                delete_user_set(store, doomed, confirm)
                st.rerun()
            except DlxError as err:
                st.error(md(err))

st.subheader("Browse")
names = list(DATASETS)
if st.session_state.get(BROWSED) not in names:
    st.session_state[BROWSED] = None
# Nothing is loaded until a set is chosen: loading one imports torch into the app's server (about 0.4 GB
# for as long as it runs), a price paid by those who browse, not by every visit to this page (issue 30).
chosen = st.selectbox("Data set", names, key=BROWSED, index=None, placeholder="Choose a data set to browse")
if chosen is None:
    st.caption("Class balance, samples per class, feature statistics or example texts of the chosen set.")
    st.stop()
entry = DATASETS[chosen]
st.caption(md(entry.description))
problem = files_problem(chosen)
if problem:
    st.warning(f"{md(problem)}.", icon=":material/folder_off:")
    st.stop()
try:
    bundle = load_dataset(chosen)
except DlxError as err:
    st.error(md(err))
    st.stop()

balance = browse.class_balance(bundle)
left, right = st.columns([1, 2])
left.metric("train / val / test", " / ".join(f"{n:,}" for n in balance.sum()))
left.dataframe(balance, width="stretch")
right.bar_chart(balance, stack=True)

if entry.kind == "image":
    st.markdown("**Samples per class** (training split)")
    for class_name, images in browse.sample_grid(bundle).items():
        st.caption(md(class_name))
        if images:
            st.image(images, width=72, clamp=True)
elif entry.kind == "table":
    for choice in browse.column_choices(store, chosen):
        st.caption(md(choice))
    stats = browse.feature_stats(bundle)
    st.dataframe(stats, width="stretch", column_config={c: st.column_config.NumberColumn(c, format="%.4g")
                                                        for c in stats.columns})
    feature = st.selectbox("Distribution of", list(stats.index), key="data.feature")
    values = browse.feature_values(bundle, list(stats.index).index(feature))
    st.bar_chart(browse.histogram(values), x_label=feature, y_label="rows")
    st.caption("Statistics and distributions in the data's own units"
               + (". The model sees each feature standardised (its training rows' mean 0, std 1)."
                  if browse.standardised(bundle) else "."))
elif entry.kind == "text":
    st.markdown("**Example texts** (training split)")
    examples = browse.example_texts(bundle)
    st.dataframe(examples, hide_index=True, width="stretch")
    st.download_button("Download these texts (CSV)", browse.to_csv(examples), f"{chosen}-examples.csv", "text/csv",
                       key="data.examples_csv", icon=":material/download:")

mistakes = browse.mistakes_per_class(store, chosen)
if mistakes:
    run_id, frame = mistakes
    st.markdown(f"**Mistakes per class** of run {run_id} (test split)")
    st.dataframe(frame, width="stretch")
