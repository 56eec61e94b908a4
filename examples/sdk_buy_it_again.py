# The buy-it-again recipe written for Kumo's SDK (shared/seed/buy-it-again-recipe.txt), run locally
# by pql. Compared with the recipe's code only four things changed: the import (pql instead of
# kumoai, plus sys for the command line), the init call (no server URL or API key), the connector
# (a local folder instead of S3) and the query's X, which is 30 days. Everything else is verbatim.
#
#   python examples/sdk_buy_it_again.py [DATA_DIR]
#
# DATA_DIR holds users, items and transactions as .parquet or .csv files, with the recipe's column
# names (user_id, item_id, transactions.timestamp); default: the small committed sample
# examples/synthetic, relative to the current directory. Predictions and embeddings are written
# back to DATA_DIR by the output connector (buy_it_again_predictions*.parquet).

import pql as kumo, sys

kumo.init()

connector = kumo.LocalConnector(sys.argv[1] if len(sys.argv) > 1 else "examples/synthetic")

users = kumo.Table.from_source_table(
    source_table=connector.table('users'),
    primary_key='user_id',
).infer_metadata()

items = kumo.Table.from_source_table(
    source_table=connector.table('items'),
    primary_key='item_id',
).infer_metadata()

transactions = kumo.Table.from_source_table(
    source_table=connector.table('transactions'),
    time_column='timestamp',
).infer_metadata()

graph = kumo.Graph(
    tables={
        'users': users,
        'items': items,
        'transactions': transactions,
    },
    edges=[
        dict(src_table='transactions', fkey='user_id', dst_table='users'),
        dict(src_table='transactions', fkey='item_id', dst_table='items'),
    ],
)

graph.validate(verbose=True)

pquery = kumo.PredictiveQuery(
    graph=graph,
    query=(
        "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30, days) RANK TOP 50\n"
        "FOR EACH users.user_id"
    ),
)
pquery.validate(verbose=True)

model_plan = pquery.suggest_model_plan()
trainer = kumo.Trainer(model_plan)
training_job = trainer.fit(
    graph=graph,
    train_table=pquery.generate_training_table(non_blocking=True),
    non_blocking=False,
)
print(f"Training metrics: {training_job.metrics()}")

prediction_job = trainer.predict(
    graph=graph,
    prediction_table=pquery.generate_prediction_table(non_blocking=True),
    output_types={'predictions', 'embeddings'},
    output_connector=connector,
    output_table_name='buy_it_again_predictions',
    training_job_id=training_job.job_id,
    non_blocking=False,
)
print(f'Batch prediction job summary: {prediction_job.summary()}')
