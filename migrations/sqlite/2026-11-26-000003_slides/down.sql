DROP TABLE slides;
DROP TABLE slide_ingests;
