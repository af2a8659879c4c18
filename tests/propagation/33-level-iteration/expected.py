import sys
import flordb as flor
from pdfs import extract_pages, classify

for path in sys.argv[1:]:
    with flor.iteration("document", None, path):
        pages = extract_pages(path)
        labels = [classify(p) for p in pages]
        flor.log("n_pages", len(pages))
        flor.log("n_figures", labels.count("figure"))
    flor.commit()
