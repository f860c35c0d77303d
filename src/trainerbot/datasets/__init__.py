"""Datasets: import and validate uploads, export in the field's formats, snapshot safely.

Nothing here touches the store: functions take and return plain records, and the file
helpers only write below folders the caller already resolved under the data folder.
"""
