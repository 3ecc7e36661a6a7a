PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE studies (
	study_id INTEGER NOT NULL, 
	study_name VARCHAR(512) NOT NULL, 
	PRIMARY KEY (study_id)
);
INSERT INTO studies VALUES(1,'unet_optuna');
CREATE TABLE version_info (
	version_info_id INTEGER NOT NULL, 
	schema_version INTEGER, 
	library_version VARCHAR(256), 
	PRIMARY KEY (version_info_id), 
	CHECK (version_info_id=1)
);
INSERT INTO version_info VALUES(1,12,'2.10.1');
CREATE TABLE study_directions (
	study_direction_id INTEGER NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	study_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	PRIMARY KEY (study_direction_id), 
	UNIQUE (study_id, objective), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO study_directions VALUES(1,'MAXIMIZE',1,0);
CREATE TABLE study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_user_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_system_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE trials (
	trial_id INTEGER NOT NULL, 
	number INTEGER, 
	study_id INTEGER, 
	state VARCHAR(8) NOT NULL, 
	datetime_start DATETIME, 
	datetime_complete DATETIME, 
	PRIMARY KEY (trial_id), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO trials VALUES(1,0,1,'COMPLETE','2026-12-02 00:41:50.734860','2026-12-02 00:42:21.029582');
INSERT INTO trials VALUES(2,1,1,'COMPLETE','2026-12-02 00:42:21.134853','2026-12-02 00:42:39.627031');
INSERT INTO trials VALUES(3,2,1,'RUNNING','2026-12-02 00:43:04.415649',NULL);
CREATE TABLE trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_user_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO trial_user_attributes VALUES(1,1,'hparams_search','"unet_optuna"');
INSERT INTO trial_user_attributes VALUES(2,1,'data.splits.train.num_samples','"16"');
INSERT INTO trial_user_attributes VALUES(3,1,'data.splits.val.num_samples','"8"');
INSERT INTO trial_user_attributes VALUES(4,1,'data.splits.test.num_samples','"8"');
INSERT INTO trial_user_attributes VALUES(5,1,'data.dataset.image_size','"32"');
INSERT INTO trial_user_attributes VALUES(6,1,'data.batch_size','"4"');
INSERT INTO trial_user_attributes VALUES(7,1,'data.num_workers','"0"');
INSERT INTO trial_user_attributes VALUES(8,1,'model.depth','"2"');
INSERT INTO trial_user_attributes VALUES(9,1,'model.base_width','"4"');
INSERT INTO trial_user_attributes VALUES(10,1,'trainer.accelerator','"cpu"');
INSERT INTO trial_user_attributes VALUES(11,1,'callbacks.progress_bar','"null"');
INSERT INTO trial_user_attributes VALUES(12,1,'callbacks.model_summary','"null"');
INSERT INTO trial_user_attributes VALUES(13,1,'trainer.max_epochs','"1"');
INSERT INTO trial_user_attributes VALUES(14,1,'logger','"csv"');
INSERT INTO trial_user_attributes VALUES(15,1,'job','0');
INSERT INTO trial_user_attributes VALUES(16,2,'hparams_search','"unet_optuna"');
INSERT INTO trial_user_attributes VALUES(17,2,'data.splits.train.num_samples','"16"');
INSERT INTO trial_user_attributes VALUES(18,2,'data.splits.val.num_samples','"8"');
INSERT INTO trial_user_attributes VALUES(19,2,'data.splits.test.num_samples','"8"');
INSERT INTO trial_user_attributes VALUES(20,2,'data.dataset.image_size','"32"');
INSERT INTO trial_user_attributes VALUES(21,2,'data.batch_size','"4"');
INSERT INTO trial_user_attributes VALUES(22,2,'data.num_workers','"0"');
INSERT INTO trial_user_attributes VALUES(23,2,'model.depth','"2"');
INSERT INTO trial_user_attributes VALUES(24,2,'model.base_width','"4"');
INSERT INTO trial_user_attributes VALUES(25,2,'trainer.accelerator','"cpu"');
INSERT INTO trial_user_attributes VALUES(26,2,'callbacks.progress_bar','"null"');
INSERT INTO trial_user_attributes VALUES(27,2,'callbacks.model_summary','"null"');
INSERT INTO trial_user_attributes VALUES(28,2,'trainer.max_epochs','"1"');
INSERT INTO trial_user_attributes VALUES(29,2,'logger','"csv"');
INSERT INTO trial_user_attributes VALUES(30,2,'job','1');
INSERT INTO trial_user_attributes VALUES(31,3,'job','2');
CREATE TABLE trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_system_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_params (
	param_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	param_name VARCHAR(512), 
	param_value FLOAT, 
	distribution_json TEXT, 
	PRIMARY KEY (param_id), 
	UNIQUE (trial_id, param_name), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO trial_params VALUES(1,1,'optimizer.lr',0.00024156772025296256375,'{"name": "LogUniformDistribution", "attributes": {"low": 0.0001, "high": 0.01}}');
INSERT INTO trial_params VALUES(2,1,'optimizer.weight_decay',0.00030791800489830161487,'{"name": "LogUniformDistribution", "attributes": {"low": 1e-06, "high": 0.01}}');
INSERT INTO trial_params VALUES(3,1,'loss',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": ["dice_ce", "ce", "dice"]}}');
INSERT INTO trial_params VALUES(4,1,'data/augmentation',3.0,'{"name": "CategoricalDistribution", "attributes": {"choices": ["default", "light", "strong", "none"]}}');
INSERT INTO trial_params VALUES(5,2,'optimizer.lr',0.0056476174245728818015,'{"name": "LogUniformDistribution", "attributes": {"low": 0.0001, "high": 0.01}}');
INSERT INTO trial_params VALUES(6,2,'optimizer.weight_decay',2.6994114136168177605e-05,'{"name": "LogUniformDistribution", "attributes": {"low": 1e-06, "high": 0.01}}');
INSERT INTO trial_params VALUES(7,2,'loss',2.0,'{"name": "CategoricalDistribution", "attributes": {"choices": ["dice_ce", "ce", "dice"]}}');
INSERT INTO trial_params VALUES(8,2,'data/augmentation',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": ["default", "light", "strong", "none"]}}');
INSERT INTO trial_params VALUES(9,3,'data/augmentation',2.0,'{"name": "CategoricalDistribution", "attributes": {"choices": ["default", "light", "strong", "none"]}}');
INSERT INTO trial_params VALUES(10,3,'loss',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": ["dice_ce", "ce", "dice"]}}');
INSERT INTO trial_params VALUES(11,3,'optimizer.lr',0.00030723475664890534863,'{"name": "LogUniformDistribution", "attributes": {"low": 0.0001, "high": 0.01}}');
INSERT INTO trial_params VALUES(12,3,'optimizer.weight_decay',0.001386636780193299407,'{"name": "LogUniformDistribution", "attributes": {"low": 1e-06, "high": 0.01}}');
CREATE TABLE trial_values (
	trial_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	value FLOAT NOT NULL, 
	PRIMARY KEY (trial_value_id), 
	UNIQUE (trial_id, objective), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO trial_values VALUES(1,1,0,0.0099892327561974525451);
INSERT INTO trial_values VALUES(2,2,0,0.0099892327561974525451);
CREATE TABLE trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	intermediate_value FLOAT NOT NULL, 
	PRIMARY KEY (trial_intermediate_value_id), 
	UNIQUE (trial_id, step), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	heartbeat DATETIME NOT NULL, 
	PRIMARY KEY (trial_heartbeat_id), 
	UNIQUE (trial_id), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version VALUES('v2.6.0.a');
CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name);
COMMIT;
