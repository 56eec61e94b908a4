"""The Kumo-style Python SDK: connectors, Table, PredictiveQuery, Trainer (``import pql as kumo``).

A thin layer over the core API: tables and graphs are built by ``pql.graphbuild``, queries are
checked by ``pql.validate``, tables come from ``pql.compile`` and training and prediction are the
jobs of ``pql.jobs``. ``pql.Graph`` itself takes SDK tables (see ``pql.sdk.graph``).
"""

from pql.sdk.config import Settings, init
from pql.sdk.connectors import Connector, DuckDBConnector, LocalConnector, S3Connector, SourceTable
from pql.sdk.jobs import Job, JobStatus
from pql.sdk.plans import ModelPlan, TrainingTablePlan
from pql.sdk.pquery import (PredictionTable, PredictionTableJob, PredictiveQuery, TrainingTable,
                            TrainingTableJob)
from pql.sdk.table import Column, Table
from pql.sdk.trainer import (BatchPredictionJob, BatchPredictionJobResult, PredictionSummary, Trainer,
                             TrainingJob, TrainingJobResult, TrainingMetrics)

__all__ = [
    "init", "Settings", "Connector", "LocalConnector", "DuckDBConnector", "S3Connector", "SourceTable",
    "Table", "Column", "PredictiveQuery", "TrainingTable", "PredictionTable", "TrainingTableJob",
    "PredictionTableJob", "TrainingTablePlan", "ModelPlan", "Trainer", "TrainingJob", "TrainingJobResult",
    "TrainingMetrics", "BatchPredictionJob", "BatchPredictionJobResult", "PredictionSummary", "Job", "JobStatus",
]
