import sys
import flordb as flor
from pdfs import extract_pages, classify

for pdf in sys.argv[1:]:
    with flor.iteration("document", None, pdf):
        pages = extract_pages(pdf)
        page_labels = [classify(p) for p in pages]
        flor.log("n_pages", len(pages))
        flor.log("n_figures", page_labels.count("figure"))
    flor.commit()
