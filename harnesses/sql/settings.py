# The target's numeric knobs (with query.sql). evaluate.py (immutable) applies them to a fresh
# database before it times the query; the offline operators tune them within
# search_spaces/sql.yaml. Index creation and ANALYZE are set-up, not part of exec_ms.

INDEX_ORDERS_DATE = 0  # 1: CREATE INDEX ON orders(order_date)
INDEX_ORDERS_STATUS_DATE = 0  # 1: ON orders(status, order_date, customer_id, product_id, quantity)
INDEX_ORDERS_CUSTOMER = 0  # 1: CREATE INDEX ON orders(customer_id)
ANALYZE = 0  # 1: run ANALYZE after creating the indexes (statistics for the query planner)
CACHE_SIZE_KB = 512  # PRAGMA cache_size of the connection that runs the query, in KiB
MMAP_SIZE_MB = 0  # PRAGMA mmap_size: read the database through a memory map of this size (0: off)
FETCH_BATCH = 1  # rows fetched per cursor.fetchmany call
