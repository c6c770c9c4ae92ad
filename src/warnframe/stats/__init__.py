"""Statistics every table shares: rates with Wilson intervals and exact tests (``rates``) and the
seed x prompt cluster bootstrap with equivalence tests (``clustered``)."""
