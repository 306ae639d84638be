DROP TABLE case_imports;
DROP TABLE cases;
DROP TABLE dictionary_fields;
