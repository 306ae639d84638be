DROP TABLE adjudications;
DROP TABLE reads;
DROP TABLE campaigns;
DROP TABLE annotation_schemas;
